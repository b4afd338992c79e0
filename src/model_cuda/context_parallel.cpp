#include "model_cuda/context_parallel.h"

#include <algorithm>
#include <string>

#include "model_cuda/cuda_check.h"
#include "ops/cuda/attention.h"
#include "ops/cuda/paged_attention.h"
#include "ops/cuda/rope.h"

namespace longctx::cuda {
namespace {

constexpr int64_t kBf16 = 2, kF32 = 4;

size_t take(size_t& off, int64_t bytes) {
  const size_t at = off;
  off += round_up_256(static_cast<size_t>(bytes));
  return at;
}

}  // namespace

Result<ContextParallelStep> ContextParallelStep::create(const ContextParallelDims& dims,
                                                        const ParallelLayout& layout, int rank,
                                                        Communicator* cp, cudaStream_t stream) {
  ContextParallelStep x;
  if (!cp || cp->size() < 2) return x;
  x.dims_ = dims, x.layout_ = layout, x.rank_ = rank, x.cp_ = cp, x.stream_ = stream;
  x.members_ = cp->size();
  const int64_t T = dims.max_tokens, C = x.members_, w = dims.num_q_heads * dims.head_dim,
                kvw = dims.num_kv_heads * dims.head_dim, hq = dims.num_q_heads;
  size_t off = 0;
  const size_t o_kvm = take(off, T * 2 * kvw * kBf16), o_kva = take(off, C * T * 2 * kvw * kBf16),
               o_qm = take(off, T * w * kBf16), o_qa = take(off, C * T * w * kBf16),
               o_o = take(off, C * T * w * kF32), o_or = take(off, C * T * w * kF32),
               o_l = take(off, C * T * hq * kF32), o_lr = take(off, C * T * hq * kF32),
               o_lg = take(off, C * dims.max_rows * dims.vocab * kF32);
  LONGCTX_ASSIGN_OR_RETURN(x.buf_, DeviceBuffer::allocate(off, "the context-parallel buffers"));
  x.kv_mine_ = x.buf_.as<__nv_bfloat16>(o_kvm);
  x.kv_all_ = x.buf_.as<__nv_bfloat16>(o_kva);
  x.q_mine_ = x.buf_.as<__nv_bfloat16>(o_qm);
  x.q_all_ = x.buf_.as<__nv_bfloat16>(o_qa);
  x.o_ = x.buf_.as<float>(o_o);
  x.o_recv_ = x.buf_.as<float>(o_or);
  x.lse_ = x.buf_.as<float>(o_l);
  x.lse_recv_ = x.buf_.as<float>(o_lr);
  x.logits_all_ = x.buf_.as<float>(o_lg);

  const int64_t vseqs = C * (dims.max_seqs + 1);
  size_t mo = 0;
  x.m_.q_begin = take(mo, (vseqs + 1) * 8);
  x.m_.ctx = take(mo, vseqs * 8);
  x.m_.tables = take(mo, vseqs * dims.max_blocks_per_seq * 4);
  x.m_.causal = take(mo, C * T * 4);
  x.m_.slots = take(mo, C * T * 8);
  x.m_.zeros = take(mo, C * T * 4);
  x.m_.end = mo;
  LONGCTX_ASSIGN_OR_RETURN(x.meta_, DeviceBuffer::allocate(mo, "the context-parallel step metadata"));
  LONGCTX_ASSIGN_OR_RETURN(x.meta_host_, HostStaging::allocate(mo));
  LONGCTX_CUDA_OK(cudaMemsetAsync(x.meta_.as<unsigned char>(x.m_.zeros), 0, C * T * 4, stream),
                  "context parallel: zero positions");
  return x;
}

Status ContextParallelStep::plan(const ForwardBatch& g, const RankKVPlacement& placement,
                                 ForwardBatch& mine) {
  const int64_t ns = g.num_seqs(), C = members_;
  const int me = cp_->rank();
  // Each member's tokens (indices into g), sequence after sequence, as ParallelLayout splits them.
  std::vector<std::vector<int64_t>> toks(static_cast<size_t>(C));
  std::vector<std::vector<int64_t>> qb(static_cast<size_t>(C),
                                       std::vector<int64_t>(static_cast<size_t>(ns) + 1, 0));
  std::vector<int> owner(static_cast<size_t>(g.num_tokens()));
  std::vector<int64_t> index(owner.size());
  for (int64_t s = 0; s < ns; ++s) {
    const int64_t q0 = g.q_begin[static_cast<size_t>(s)], nq = g.q_begin[static_cast<size_t>(s) + 1] - q0;
    const int64_t start = g.context_lens[static_cast<size_t>(s)] - nq;
    for (int64_t i = 0; i < nq; ++i) {
      const int o = layout_.cp_rank_of_new_token(i, nq, start);
      owner[static_cast<size_t>(q0 + i)] = o;
      index[static_cast<size_t>(q0 + i)] = static_cast<int64_t>(toks[static_cast<size_t>(o)].size());
      toks[static_cast<size_t>(o)].push_back(q0 + i);
    }
    for (int64_t j = 0; j < C; ++j)
      qb[static_cast<size_t>(j)][static_cast<size_t>(s) + 1] =
          static_cast<int64_t>(toks[static_cast<size_t>(j)].size());
  }
  const std::vector<int64_t>& my = toks[static_cast<size_t>(me)];
  t_mine_ = static_cast<int64_t>(my.size());
  t_max_ = 0;
  for (const auto& t : toks) t_max_ = std::max(t_max_, static_cast<int64_t>(t.size()));

  // This rank's share of the step (token-wise ops); its requested rows as local indices.
  mine = ForwardBatch{};
  for (int64_t t : my) {
    mine.token_ids.push_back(g.token_ids[static_cast<size_t>(t)]);
    mine.positions.push_back(g.positions[static_cast<size_t>(t)]);
  }
  mine.slots.assign(my.size(), -1);
  mine.q_begin = qb[static_cast<size_t>(me)];
  mine.context_lens = g.context_lens;
  std::vector<int64_t> per_owner(static_cast<size_t>(C), 0);
  row_owner_.clear(), row_index_.clear();
  for (int64_t r : g.logit_rows) {
    const int o = owner[static_cast<size_t>(r)];
    row_owner_.push_back(o);
    row_index_.push_back(per_owner[static_cast<size_t>(o)]++);
    if (o == me) mine.logit_rows.push_back(index[static_cast<size_t>(r)]);
  }
  rows_total_ = static_cast<int64_t>(g.logit_rows.size());
  rows_mine_ = static_cast<int64_t>(mine.logit_rows.size());
  rows_max_ = *std::max_element(per_owner.begin(), per_owner.end());

  // The attention over this rank's keys: every member's queries as sequences (member j,
  // sequence s) — rows j·t_max + its local rows — then one padding sequence per member (its
  // rows up to t_max: no key, never read back).
  ForwardBatch keys;
  std::vector<int32_t> causal;
  placement.localize(g, keys, causal);
  if (ns > dims_.max_seqs || keys.block_table_stride > dims_.max_blocks_per_seq || t_max_ > dims_.max_tokens)
    return internal_error("context parallel: a step of " + std::to_string(ns) + " sequences and " +
                          std::to_string(g.num_tokens()) + " tokens is over the buffers' sizes");
  vseqs_ = C * (ns + 1);
  vstride_ = keys.block_table_stride;
  max_vctx_ = 0, max_vq_ = 0;
  unsigned char* h = meta_host_.as<unsigned char>();
  auto* vqb = reinterpret_cast<int64_t*>(h + m_.q_begin);
  auto* vctx = reinterpret_cast<int64_t*>(h + m_.ctx);
  auto* vtab = reinterpret_cast<int32_t*>(h + m_.tables);
  auto* vcausal = reinterpret_cast<int32_t*>(h + m_.causal);
  auto* vslots = reinterpret_cast<int64_t*>(h + m_.slots);
  int64_t v = 0;
  for (int64_t j = 0; j < C; ++j) {
    const std::vector<int64_t>& tj = toks[static_cast<size_t>(j)];
    for (int64_t s = 0; s <= ns; ++s, ++v) {
      const bool pad = s == ns;
      const int64_t b0 =
          pad ? static_cast<int64_t>(tj.size()) : qb[static_cast<size_t>(j)][static_cast<size_t>(s)];
      const int64_t b1 = pad ? t_max_ : qb[static_cast<size_t>(j)][static_cast<size_t>(s) + 1];
      vqb[v] = j * t_max_ + b0;
      vctx[v] = pad ? 0 : keys.context_lens[static_cast<size_t>(s)];
      for (int64_t e = 0; e < vstride_; ++e)
        vtab[v * vstride_ + e] = pad ? 0 : keys.block_tables[static_cast<size_t>(s * vstride_ + e)];
      max_vctx_ = std::max(max_vctx_, vctx[v]);
      max_vq_ = std::max(max_vq_, b1 - b0);
    }
    for (int64_t i = 0; i < t_max_; ++i) {
      const bool real = i < static_cast<int64_t>(tj.size());
      const size_t t = real ? static_cast<size_t>(tj[static_cast<size_t>(i)]) : 0;
      vcausal[j * t_max_ + i] = real ? causal[t] : 0;
      vslots[j * t_max_ + i] = real ? keys.slots[t] : -1;
    }
  }
  vqb[vseqs_] = C * t_max_;
  auto copy = [&](size_t off, int64_t bytes) {
    return cudaMemcpyAsync(meta_.as<unsigned char>(off), h + off, static_cast<size_t>(bytes),
                           cudaMemcpyHostToDevice, stream_);
  };
  LONGCTX_CUDA_OK(copy(m_.q_begin, (vseqs_ + 1) * 8), "context parallel: uploading q_begin");
  LONGCTX_CUDA_OK(copy(m_.ctx, vseqs_ * 8), "context parallel: uploading key counts");
  LONGCTX_CUDA_OK(copy(m_.tables, vseqs_ * vstride_ * 4), "context parallel: uploading block tables");
  LONGCTX_CUDA_OK(copy(m_.causal, C * t_max_ * 4), "context parallel: uploading causal lengths");
  LONGCTX_CUDA_OK(copy(m_.slots, C * t_max_ * 8), "context parallel: uploading slots");
  return Status::ok();
}

Status ContextParallelStep::write_kv(const __nv_bfloat16* k, int64_t kv_stride, int64_t v_offset,
                                     const double* inv_freq, int64_t rotary_dim, __nv_bfloat16* k_cache,
                                     __nv_bfloat16* v_cache, int64_t /*cache_block_size*/) {
  if (t_max_ == 0) return Status::ok();
  const int64_t kvw = dims_.num_kv_heads * dims_.head_dim;
  if (t_mine_ > 0) {
    LONGCTX_CUDA_OK(cudaMemcpy2DAsync(kv_mine_, 2 * kvw * kBf16, k, kv_stride * kBf16, kvw * kBf16, t_mine_,
                                      cudaMemcpyDeviceToDevice, stream_),
                    "context parallel: packing K");
    LONGCTX_CUDA_OK(cudaMemcpy2DAsync(kv_mine_ + kvw, 2 * kvw * kBf16, k + v_offset, kv_stride * kBf16,
                                      kvw * kBf16, t_mine_, cudaMemcpyDeviceToDevice, stream_),
                    "context parallel: packing V");
  }
  cp_->all_gather(reinterpret_cast<const float*>(kv_mine_), t_max_ * kvw, reinterpret_cast<float*>(kv_all_));
  // The rows this rank keeps (slot ≥ 0) into its cache. The K rows are rotated already: the
  // write's RoPE runs at position 0 (cos 1, sin 0: the identity, exactly).
  RopeKvParams rp;
  rp.k = kv_all_;
  rp.v = kv_all_ + kvw;
  rp.kv_stride = 2 * kvw;
  rp.num_tokens = members_ * t_max_;
  rp.num_q_heads = 0, rp.num_kv_heads = dims_.num_kv_heads, rp.head_dim = dims_.head_dim;
  rp.rotary_dim = rotary_dim;
  rp.positions = meta_.as<int32_t>(m_.zeros);
  rp.inv_freq = inv_freq;
  rp.slots = meta_.as<int64_t>(m_.slots);
  rp.k_cache = k_cache;
  rp.v_cache = v_cache;
  LONGCTX_CUDA_OK(rope_kv_write(rp, stream_), "context parallel: KV write");
  return Status::ok();
}

Status ContextParallelStep::attend(const __nv_bfloat16* q, int64_t q_stride, const __nv_bfloat16* k_cache,
                                   const __nv_bfloat16* v_cache, int64_t cache_block_size, void* workspace,
                                   size_t workspace_bytes, __nv_bfloat16* out) {
  if (t_max_ == 0) return Status::ok();
  const int64_t hq = dims_.num_q_heads, d = dims_.head_dim, w = hq * d, total = members_ * t_max_;
  if (t_mine_ > 0)
    LONGCTX_CUDA_OK(cudaMemcpy2DAsync(q_mine_, w * kBf16, q, q_stride * kBf16, w * kBf16, t_mine_,
                                      cudaMemcpyDeviceToDevice, stream_),
                    "context parallel: packing the queries");
  cp_->all_gather(reinterpret_cast<const float*>(q_mine_), t_max_ * w * kBf16 / kF32,
                  reinterpret_cast<float*>(q_all_));
  PagedAttentionParams ap;
  ap.q = q_all_;
  ap.q_stride = w;
  ap.out_f32 = o_;  // fp32 partial states: rounded to bf16 once, by the merge below
  ap.lse = lse_;
  ap.k_cache = k_cache;
  ap.v_cache = v_cache;
  ap.block_size = cache_block_size;
  ap.num_seqs = vseqs_;
  ap.q_begin = meta_.as<int64_t>(m_.q_begin);
  ap.context_lens = meta_.as<int64_t>(m_.ctx);
  ap.block_tables = meta_.as<int32_t>(m_.tables);
  ap.block_table_stride = vstride_;
  ap.max_num_q = max_vq_;
  ap.max_context_len = max_vctx_;
  ap.num_q_heads = hq, ap.num_kv_heads = dims_.num_kv_heads, ap.head_dim = d;
  ap.causal_lens = meta_.as<int32_t>(m_.causal);
  ap.workspace = workspace;
  ap.workspace_bytes = workspace_bytes;
  if (paged_attention_workspace_bytes(ap, total) > workspace_bytes)
    return internal_error("context parallel: the attention workspace of " + std::to_string(workspace_bytes) +
                          " bytes is too small");
  LONGCTX_CUDA_OK(paged_attention(ap, total, stream_), "context parallel: attention");
  // Member j's queries' states over this rank's keys go to j; j's states of this rank's queries come back.
  cp_->all_to_all(o_, t_max_ * w, o_recv_);
  cp_->all_to_all(lse_, t_max_ * hq, lse_recv_);
  const int64_t rows = t_mine_ * hq;
  if (rows == 0) return Status::ok();
  // Member j's states of this rank's queries at o_recv_ + j·t_max·w: merged in member order,
  // in fp32, rounded to bf16 once.
  MergeStatesParams mp;
  mp.o = o_recv_, mp.o_state_stride = t_max_ * w;
  mp.lse = lse_recv_, mp.lse_state_stride = t_max_ * hq;
  mp.num_states = members_, mp.rows = rows, mp.head_dim = d;
  mp.out = out, mp.out_dtype = DType::kBF16;
  LONGCTX_CUDA_OK(merge_attention_states(mp, stream_), "context parallel: merging");
  return Status::ok();
}

Status ContextParallelStep::gather_logits(float* logits) {
  if (rows_total_ == 0) return Status::ok();
  const int64_t vocab = dims_.vocab;
  cp_->all_gather(logits, rows_max_ * vocab, logits_all_);
  for (int64_t i = 0; i < rows_total_; ++i) {
    const int64_t src = row_owner_[static_cast<size_t>(i)] * rows_max_ + row_index_[static_cast<size_t>(i)];
    LONGCTX_CUDA_OK(cudaMemcpyAsync(logits + i * vocab, logits_all_ + src * vocab, vocab * kF32,
                                    cudaMemcpyDeviceToDevice, stream_),
                    "context parallel: placing the gathered logits");
  }
  return Status::ok();
}

}  // namespace longctx::cuda
