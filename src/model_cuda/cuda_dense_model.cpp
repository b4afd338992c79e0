#include "model_cuda/cuda_dense_model.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "model_cuda/cuda_check.h"
#include "ops/cuda/activation.h"
#include "ops/cuda/embedding.h"
#include "ops/cuda/fill.h"
#include "ops/cuda/norm.h"
#include "ops/cuda/paged_attention.h"
#include "ops/cuda/rope.h"
#include "ops/cuda/sampling.h"
#include "ops/cuda/skinny_linear.h"

namespace longctx::cuda {
namespace {

constexpr size_t kBlasWorkspaceBytes = size_t{32} << 20;  // what cuBLAS reserves on Hopper
// Flash-decoding partials: the planner splits only while (row tiles × kv heads × seqs) is
// under ~2 waves, so rows × splits stays near 800 × 128 whatever the batch: 64 MiB covers
// d 128 with room; a step that needs more is an error, never an overrun.
constexpr size_t kAttnWorkspaceBytes = size_t{96} << 20;

size_t take(size_t& off, size_t bytes) {
  const size_t at = off;
  off += round_up_256(bytes);
  return at;
}

}  // namespace

CudaDenseModel::CudaDenseModel(const ModelConfig& cfg, const CudaModelOptions& opts, const CudaRankSpec& spec,
                               const RankShape& rs)
    : cfg_(cfg), opts_(opts), spec_(spec), rs_(rs), placement_(spec.layout, spec.rank, opts.block_size) {}

CudaDenseModel::~CudaDenseModel() {
  graphs_.clear();
  if (blas_.handle) cublasLtDestroy(blas_.handle);
  if (stream_ && owns_stream_) cudaStreamDestroy(stream_);
}

namespace {

Status check_options(const CudaModelOptions& o) {
  auto bad = [](const std::string& flag, int64_t v) {
    return invalid_argument(flag + " must be >= 1, got " + std::to_string(v));
  };
  if (o.max_num_batched_tokens < 1) return bad("--max-num-batched-tokens", o.max_num_batched_tokens);
  if (o.max_num_seqs < 1) return bad("--max-num-seqs", o.max_num_seqs);
  if (o.block_size < 1) return bad("--block-size", o.block_size);
  if (o.max_logit_rows < 0) return bad("max_logit_rows", o.max_logit_rows);
  if (o.max_model_len < 0) return bad("--max-model-len", o.max_model_len);
  if (!(o.gpu_memory_utilization > 0.0 && o.gpu_memory_utilization <= 1.0))
    return invalid_argument("--gpu-memory-utilization must be in (0, 1], got " +
                            std::to_string(o.gpu_memory_utilization));
  return Status::ok();
}

Result<size_t> used_device_bytes(size_t* total) {
  size_t free_b = 0, total_b = 0;
  LONGCTX_CUDA_OK(cudaMemGetInfo(&free_b, &total_b), "reading the device's free memory");
  if (total) *total = total_b;
  return total_b - free_b;
}

}  // namespace

Result<std::unique_ptr<CudaDenseModel>> CudaDenseModel::create(const ModelConfig& cfg, const DenseWeights& w,
                                                               const CudaModelOptions& opts) {
  LONGCTX_RETURN_IF_ERROR(check_options(opts));
  LONGCTX_RETURN_IF_ERROR(check_supported(cfg));
  LONGCTX_CUDA_OK(cudaFree(nullptr), "initialising CUDA");  // the context, before measuring
  size_t total = 0;
  LONGCTX_ASSIGN_OR_RETURN(size_t used0, used_device_bytes(&total));
  if (opts.num_kv_blocks == 0)
    LONGCTX_RETURN_IF_ERROR(
        check_weights_fit(total, used0, opts.gpu_memory_utilization, device_weight_bytes(cfg)));
  LONGCTX_ASSIGN_OR_RETURN(DeviceWeights dw, upload_dense_weights(cfg, w));
  std::unique_ptr<CudaDenseModel> m(new CudaDenseModel(cfg, opts, CudaRankSpec{}, full_rank_shape(cfg)));
  LONGCTX_RETURN_IF_ERROR(m->init(std::move(dw), used0));
  return m;
}

namespace {

// What the GPU model runs of a layout, with ShardedDenseModel::shard's messages where the
// rule is the same.
Status check_rank_spec(const ModelConfig& cfg, const CudaModelOptions& opts, const CudaRankSpec& spec) {
  const ParallelLayout& layout = spec.layout;
  const ParallelConfig& pc = layout.config();
  if (pc.helix || pc.ep > 1)
    return invalid_argument("the GPU model runs --tp, --pp, --cp, --dcp and --kvp layouts so far; " +
                            layout.to_string() + (pc.helix ? " --helix" : " --ep " + std::to_string(pc.ep)) +
                            " needs " + (pc.helix ? "the Helix exchange" : "expert parallelism") +
                            " across ranks (CPU only)");
  if (cfg.is_moe() && layout.world_size() > 1)
    return invalid_argument("the GPU model runs MoE models (" + std::string(architecture_name(cfg.arch)) +
                            ") on one GPU only so far; " + layout.to_string() +
                            " needs TP/PP/EP of the experts on the GPU (the CPU backend has them)");
  if (pc.cp > 1 && (pc.dcp > 1 || pc.kvp > 1))
    return invalid_argument("the GPU model does not combine --cp with --dcp or --kvp yet (" +
                            layout.to_string() + "; the CPU does)");
  if (layout.dims().num_heads != cfg.num_heads || layout.dims().num_kv_heads != cfg.num_kv_heads ||
      layout.dims().num_layers != cfg.num_layers)
    return invalid_argument("CudaDenseModel: the layout (" + layout.to_string() +
                            ") was built for other head/layer counts than the model's");
  if (cfg.intermediate_size % pc.tp != 0)
    return invalid_argument("--tp " + std::to_string(pc.tp) + " must divide the MLP width " +
                            std::to_string(cfg.intermediate_size));
  if (spec.rank < 0 || spec.rank >= layout.world_size())
    return invalid_argument("rank " + std::to_string(spec.rank) + " is outside the layout's world of " +
                            std::to_string(layout.world_size()));
  // The token placement (ParallelLayout's) is in blocks of the layout's block size; the
  // rank's cache in the engine's (rank_kv_placement.h).
  if ((pc.dcp > 1 || pc.kvp > 1 || pc.cp > 1) && pc.block_size != opts.block_size)
    return invalid_argument("the layout's block size " + std::to_string(pc.block_size) +
                            " differs from --block-size " + std::to_string(opts.block_size) +
                            " (CP, DCP and KVP place tokens in blocks)");
  if (pc.cp > 1 && opts.block_size % pc.cp != 0)
    return invalid_argument("--cp " + std::to_string(pc.cp) + " must divide --block-size " +
                            std::to_string(opts.block_size) +
                            " on the GPU (CP rank p mod cp keeps the K/V of position p)");
  if (pc.dcp > 1 && pc.dcp_interleave == 1 && opts.block_size % pc.dcp != 0)
    return invalid_argument(
        "--dcp " + std::to_string(pc.dcp) + " with --dcp-interleave 1 must divide --block-size " +
        std::to_string(opts.block_size) + " on the GPU (each block's tokens are split over the DCP ranks)");
  if (layout.world_size() > 1) {
    if (!spec.comms || (pc.tp > 1 && !spec.comms->tp) || (pc.pp > 1 && !spec.comms->pp) ||
        (pc.dcp > 1 && !spec.comms->dcp) || (pc.kvp > 1 && !spec.comms->kvp) ||
        (pc.cp > 1 && !spec.comms->cp))
      return invalid_argument("CudaDenseModel rank " + std::to_string(spec.rank) + " of " +
                              layout.to_string() + ": no communicator for its TP, PP, CP, DCP or KVP group");
    if (!opts.stream)
      return invalid_argument(
          "CudaDenseModel: a rank runs on the stream its communicators are ordered on; set "
          "CudaModelOptions::stream");
  }
  return Status::ok();
}

}  // namespace

Result<std::unique_ptr<CudaDenseModel>> CudaDenseModel::create(const ModelConfig& cfg, const DenseWeights& w,
                                                               const CudaModelOptions& opts,
                                                               const CudaRankSpec& spec) {
  LONGCTX_RETURN_IF_ERROR(check_options(opts));
  LONGCTX_RETURN_IF_ERROR(check_supported(cfg));
  LONGCTX_RETURN_IF_ERROR(check_rank_spec(cfg, opts, spec));
  const RankShape rs = longctx::cuda::rank_shape(cfg, spec.layout, spec.rank);
  LONGCTX_CUDA_OK(cudaFree(nullptr), "initialising CUDA");
  size_t total = 0;
  LONGCTX_ASSIGN_OR_RETURN(size_t used0, used_device_bytes(&total));
  if (opts.num_kv_blocks == 0)
    LONGCTX_RETURN_IF_ERROR(
        check_weights_fit(total, used0, opts.gpu_memory_utilization, device_weight_bytes(cfg, rs)));
  LONGCTX_ASSIGN_OR_RETURN(DeviceWeights dw, upload_dense_weights(cfg, w, rs));
  std::unique_ptr<CudaDenseModel> m(new CudaDenseModel(cfg, opts, spec, rs));
  LONGCTX_RETURN_IF_ERROR(m->init(std::move(dw), used0));
  return m;
}

Result<std::unique_ptr<CudaDenseModel>> CudaDenseModel::create_random(const ModelConfig& cfg, uint64_t seed,
                                                                      const CudaModelOptions& opts) {
  LONGCTX_RETURN_IF_ERROR(check_options(opts));
  LONGCTX_RETURN_IF_ERROR(check_supported(cfg));
  LONGCTX_CUDA_OK(cudaFree(nullptr), "initialising CUDA");
  size_t total = 0;
  LONGCTX_ASSIGN_OR_RETURN(size_t used0, used_device_bytes(&total));
  if (opts.num_kv_blocks == 0)
    LONGCTX_RETURN_IF_ERROR(
        check_weights_fit(total, used0, opts.gpu_memory_utilization, device_weight_bytes(cfg)));
  LONGCTX_ASSIGN_OR_RETURN(DeviceWeights dw, random_dense_weights(cfg, seed, 0.02f));
  std::unique_ptr<CudaDenseModel> m(new CudaDenseModel(cfg, opts, CudaRankSpec{}, full_rank_shape(cfg)));
  LONGCTX_RETURN_IF_ERROR(m->init(std::move(dw), used0));
  return m;
}

Status CudaDenseModel::init(DeviceWeights w, size_t used_at_start) {
  w_ = std::move(w);
  max_model_len_ = opts_.max_model_len > 0 ? opts_.max_model_len : cfg_.max_position_embeddings;
  if (max_model_len_ < 1)
    return invalid_argument("--max-model-len must be given: the config has no max_position_embeddings");
  const int64_t bs = opts_.block_size;
  max_blocks_per_seq_ = (max_model_len_ + bs - 1) / bs;
  max_tokens_ = std::max(opts_.max_num_batched_tokens, opts_.max_num_seqs);
  max_rows_ = opts_.max_logit_rows > 0 ? opts_.max_logit_rows : opts_.max_num_seqs;
  max_rows_ = std::min(max_rows_, max_tokens_);

  if (opts_.stream) {
    stream_ = opts_.stream;
  } else {
    LONGCTX_CUDA_OK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking),
                    "creating the model's stream");
    owns_stream_ = true;
  }
  LONGCTX_CUBLAS_OK(cublasLtCreate(&blas_.handle), "creating the cuBLASLt handle");
  LONGCTX_RETURN_IF_ERROR(allocate_workspaces());
  if (cfg_.is_moe()) {
    LONGCTX_ASSIGN_OR_RETURN(moe_, CudaMoeMlp::create(cfg_, max_tokens_, blas_));
  }

  const std::vector<double> inv = cfg_.rope_inv_freq();
  LONGCTX_ASSIGN_OR_RETURN(inv_freq_,
                           DeviceBuffer::allocate(inv.size() * sizeof(double), "rope frequencies"));
  LONGCTX_CUDA_OK(
      cudaMemcpy(inv_freq_.get(), inv.data(), inv.size() * sizeof(double), cudaMemcpyHostToDevice),
      "uploading rope frequencies");

  KVCacheShape shape{rs_.num_layers, 0,    placement_.cache_block_size(), rs_.num_kv_heads,
                     cfg_.head_dim,  false};
  const size_t per_block = DeviceKVCache::bytes_per_block(shape);
  if (opts_.num_kv_blocks > 0) {
    shape.num_blocks = opts_.num_kv_blocks;
    LONGCTX_ASSIGN_OR_RETURN(kv_, DeviceKVCache::allocate(shape));
    plan_.bytes_per_block = per_block;
    plan_.num_blocks = shape.num_blocks;
    plan_.kv_bytes = kv_.bytes();
    plan_.weight_bytes = w_.arena.bytes();
    return Status::ok();
  }

  // Profiling pass: one step of max_num_batched_tokens tokens (a single sequence, the
  // widest attention) through a temporary cache, so every lazily loaded kernel and library
  // buffer is in place when the free memory is read.
  {
    const int64_t t = opts_.max_num_batched_tokens;
    KVCacheShape tmp = shape;
    tmp.num_blocks = (t + bs - 1) / bs + 1;
    DeviceKVCache saved = std::move(kv_);
    LONGCTX_ASSIGN_OR_RETURN(kv_, DeviceKVCache::allocate(tmp));
    ForwardBatch b;
    std::vector<int32_t> ids(static_cast<size_t>(t), 0), table;
    for (int64_t i = 1; i < tmp.num_blocks; ++i) table.push_back(static_cast<int32_t>(i));
    b.add_sequence(ids.data(), t, 0, table, bs, true);
    const int64_t saved_len = max_model_len_, saved_blocks = max_blocks_per_seq_;
    max_model_len_ = std::max(max_model_len_, t);
    max_blocks_per_seq_ = std::max(max_blocks_per_seq_, tmp.num_blocks);
    Status st = run(b, /*use_graphs=*/false);
    if (st.is_ok()) st = cuda_status(cudaStreamSynchronize(stream_), "the profiling pass");
    max_model_len_ = saved_len, max_blocks_per_seq_ = saved_blocks;
    kv_ = std::move(saved);
    LONGCTX_RETURN_IF_ERROR(st);
  }
  size_t total = 0;
  LONGCTX_ASSIGN_OR_RETURN(size_t used_after, used_device_bytes(&total));
  const int64_t min_blocks = max_blocks_per_seq_ + 1;
  LONGCTX_ASSIGN_OR_RETURN(
      plan_, plan_kv_pool(total, opts_.gpu_memory_utilization, used_at_start, w_.arena.bytes(), used_after,
                          per_block, min_blocks, max_model_len_));
  shape.num_blocks = plan_.num_blocks;
  LONGCTX_ASSIGN_OR_RETURN(kv_, DeviceKVCache::allocate(shape));
  return Status::ok();
}

Status CudaDenseModel::allocate_workspaces() {
  const int64_t t = max_tokens_, h = cfg_.hidden_size, d = cfg_.head_dim;
  const int64_t qw = rs_.num_q_heads * d, qkvw = qw + 2 * rs_.num_kv_heads * d, inter = rs_.intermediate;
  const int64_t r = max_rows_;
  // A vocabulary-split LM head: this rank's columns and the TP group's, gathered.
  const int64_t tp = spec_.layout.config().tp;
  const bool split_head = rs_.head && rs_.vocab_rows != cfg_.vocab_size;
  size_t off = 0;
  const size_t o_res = take(off, t * h * 4), o_norm = take(off, t * h * 2), o_qkv = take(off, t * qkvw * 2),
               o_attn = take(off, t * qw * 2), o_gu = take(off, t * 2 * inter * 2),
               o_act = take(off, t * inter * 2), o_fn = take(off, r * h * 2),
               o_logits = take(off, r * cfg_.vocab_size * 4), o_arg = take(off, r * 4),
               o_hp = take(off, split_head ? r * rs_.vocab_rows * 4 : 0),
               o_ha = take(off, split_head ? tp * r * rs_.vocab_rows * 4 : 0);
  LONGCTX_ASSIGN_OR_RETURN(act_,
                           DeviceBuffer::allocate(off, "activations for " + std::to_string(t) + " tokens"));
  a_.residual = act_.as<float>(o_res);
  a_.normed = act_.as<__nv_bfloat16>(o_norm);
  a_.qkv = act_.as<__nv_bfloat16>(o_qkv);
  a_.attn = act_.as<__nv_bfloat16>(o_attn);
  a_.gate_up = act_.as<__nv_bfloat16>(o_gu);
  a_.mlp_act = act_.as<__nv_bfloat16>(o_act);
  a_.final_normed = act_.as<__nv_bfloat16>(o_fn);
  a_.logits = act_.as<float>(o_logits);
  a_.argmax = act_.as<int32_t>(o_arg);
  a_.head_part = split_head ? act_.as<float>(o_hp) : nullptr;
  a_.head_all = split_head ? act_.as<float>(o_ha) : nullptr;

  const int64_t s = opts_.max_num_seqs;
  size_t mo = 0;
  m_.ids = take(mo, t * 4);
  m_.positions = take(mo, t * 4);
  m_.slots = take(mo, t * 8);
  m_.q_begin = take(mo, (s + 1) * 8);
  m_.context_lens = take(mo, s * 8);
  m_.logit_rows = take(mo, r * 8);
  // Room for max_num_seqs full tables, or the profiling pass's one long table.
  const int64_t bs = opts_.block_size;
  m_.block_tables = take(mo, std::max(s * max_blocks_per_seq_, (t + bs - 1) / bs + 1) * 4);
  m_.causal_lens = take(mo, placement_.shards_keys() ? t * 4 : 0);
  m_.end = mo;
  LONGCTX_ASSIGN_OR_RETURN(meta_, DeviceBuffer::allocate(mo, "step metadata"));
  LONGCTX_ASSIGN_OR_RETURN(meta_host_, HostStaging::allocate(mo));
  // Every row's logits, then every row's id and sampled logprob (forward_rows returns them).
  LONGCTX_ASSIGN_OR_RETURN(out_host_,
                           HostStaging::allocate(static_cast<size_t>(r * cfg_.vocab_size + 2 * r) * 4));
  LONGCTX_ASSIGN_OR_RETURN(blas_ws_, DeviceBuffer::allocate(kBlasWorkspaceBytes, "the cuBLASLt workspace"));
  blas_.workspace = blas_ws_.get();
  blas_.workspace_bytes = blas_ws_.bytes();
  LONGCTX_ASSIGN_OR_RETURN(attn_ws_, DeviceBuffer::allocate(kAttnWorkspaceBytes, "the attention workspace"));
  LONGCTX_ASSIGN_OR_RETURN(sampling_params_,
                           DeviceBuffer::allocate(r * sizeof(SamplingRow), "sampling parameters"));
  LONGCTX_ASSIGN_OR_RETURN(sampling_host_, HostStaging::allocate(r * sizeof(SamplingRow)));
  LONGCTX_ASSIGN_OR_RETURN(sampled_logprobs_, DeviceBuffer::allocate(r * 4, "sampled logprobs"));
  const size_t ws = std::max<size_t>(sample_workspace_bytes(r, cfg_.vocab_size), 256);
  LONGCTX_ASSIGN_OR_RETURN(sample_ws_, DeviceBuffer::allocate(ws, "the sampling workspace"));
  const ParallelConfig& pc = spec_.layout.config();
  if (pc.cp > 1) {
    ContextParallelDims cd;
    cd.max_tokens = t, cd.max_seqs = s, cd.max_rows = r;
    cd.max_blocks_per_seq = std::max(max_blocks_per_seq_, (t + bs - 1) / bs + 1);
    cd.num_q_heads = rs_.num_q_heads, cd.num_kv_heads = rs_.num_kv_heads, cd.head_dim = d;
    cd.vocab = cfg_.vocab_size;
    LONGCTX_ASSIGN_OR_RETURN(
        cp_, ContextParallelStep::create(cd, spec_.layout, spec_.rank, spec_.comms->cp.get(), stream_));
  } else if (placement_.shards_keys()) {
    LONGCTX_ASSIGN_OR_RETURN(
        exchange_,
        AttentionExchange::create({t, rs_.num_q_heads, d}, pc.dcp > 1 ? spec_.comms->dcp.get() : nullptr,
                                  pc.kvp > 1 ? spec_.comms->kvp.get() : nullptr, stream_));
  }
  return probe_sampling();
}

Status CudaDenseModel::probe_sampling() {
  // One greedy row of zeros: a working kernel answers cudaSuccess, the stub cudaErrorNotSupported.
  LONGCTX_CUDA_OK(cudaMemsetAsync(a_.logits, 0, static_cast<size_t>(cfg_.vocab_size) * 4, stream_),
                  "sampling probe");
  LONGCTX_CUDA_OK(cudaMemsetAsync(sampling_params_.get(), 0, sizeof(SamplingRow), stream_), "sampling probe");
  const cudaError_t e = sample(a_.logits, 1, cfg_.vocab_size, sampling_params_.as<SamplingRow>(), a_.argmax,
                               sampled_logprobs_.as<float>(), sample_ws_.get(), sample_ws_.bytes(), stream_);
  if (e == cudaErrorNotSupported) {
    can_sample_ = false;
    return Status::ok();
  }
  LONGCTX_CUDA_OK(e, "sampling probe");
  LONGCTX_CUDA_OK(cudaStreamSynchronize(stream_), "sampling probe");
  can_sample_ = true;
  return Status::ok();
}

Status CudaDenseModel::validate(const ForwardBatch& b) const {
  const int64_t t = b.num_tokens(), ns = b.num_seqs(), vocab = cfg_.vocab_size;
  if (t > opts_.max_num_batched_tokens)
    return invalid_argument("the batch has " + std::to_string(t) +
                            " tokens, more than --max-num-batched-tokens " +
                            std::to_string(opts_.max_num_batched_tokens));
  if (ns > opts_.max_num_seqs)
    return invalid_argument("the batch has " + std::to_string(ns) + " sequences, more than --max-num-seqs " +
                            std::to_string(opts_.max_num_seqs));
  if (static_cast<int64_t>(b.logit_rows.size()) > max_rows_)
    return invalid_argument("the batch asks for " + std::to_string(b.logit_rows.size()) +
                            " logit rows, more than the model's max_logit_rows " + std::to_string(max_rows_));
  if (b.positions.size() != static_cast<size_t>(t) || b.slots.size() != static_cast<size_t>(t) ||
      b.q_begin.size() != static_cast<size_t>(ns + 1) || (ns > 0 && b.q_begin.back() != t) ||
      b.block_tables.size() != static_cast<size_t>(ns * b.block_table_stride))
    return invalid_argument(
        "malformed ForwardBatch: positions, slots, q_begin and block_tables do not match its " +
        std::to_string(t) + " tokens and " + std::to_string(ns) + " sequences");
  if (b.block_table_stride > max_blocks_per_seq_)
    return invalid_argument("block_table_stride " + std::to_string(b.block_table_stride) +
                            " is over the model's max_model_len " + std::to_string(max_model_len_) +
                            " / block size");
  for (int64_t i = 0; i < t; ++i) {
    const int32_t id = b.token_ids[static_cast<size_t>(i)];
    if (id < 0 || id >= vocab)
      return invalid_argument("token id " + std::to_string(id) + " at index " + std::to_string(i) +
                              " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    const int64_t slot = b.slots[static_cast<size_t>(i)];
    if (slot < -1 || slot >= kv_.shape().num_blocks * opts_.block_size)
      return invalid_argument("slot " + std::to_string(slot) + " of token " + std::to_string(i) +
                              " is outside the KV cache of " + std::to_string(kv_.shape().num_blocks) +
                              " blocks");
  }
  for (int64_t r : b.logit_rows)
    if (r < 0 || r >= t)
      return invalid_argument("logit row " + std::to_string(r) + " is outside the batch of " +
                              std::to_string(t) + " tokens");
  for (int64_t s = 0; s < ns; ++s) {
    const int64_t nq = b.q_begin[s + 1] - b.q_begin[s], ctx = b.context_lens[s];
    if (nq < 0 || ctx < nq || ctx > b.block_table_stride * opts_.block_size || ctx > max_model_len_)
      return invalid_argument("sequence " + std::to_string(s) + ": context " + std::to_string(ctx) +
                              " with " + std::to_string(nq) +
                              " new tokens does not fit its block table or max_model_len " +
                              std::to_string(max_model_len_));
  }
  for (int32_t blk : b.block_tables)
    if (blk < 0 || blk >= kv_.shape().num_blocks)
      return invalid_argument("block id " + std::to_string(blk) + " is outside the KV cache of " +
                              std::to_string(kv_.shape().num_blocks) + " blocks");
  return Status::ok();
}

Status CudaDenseModel::stage(const ForwardBatch& b, const StepShape& s,
                             const std::vector<int32_t>* causal_lens) {
  const int64_t t = b.num_tokens(), ns = b.num_seqs(), rows = static_cast<int64_t>(b.logit_rows.size());
  unsigned char* h = meta_host_.as<unsigned char>();
  auto* ids = reinterpret_cast<int32_t*>(h + m_.ids);
  auto* pos = reinterpret_cast<int32_t*>(h + m_.positions);
  auto* slots = reinterpret_cast<int64_t*>(h + m_.slots);
  auto* qb = reinterpret_cast<int64_t*>(h + m_.q_begin);
  auto* ctx = reinterpret_cast<int64_t*>(h + m_.context_lens);
  auto* lr = reinterpret_cast<int64_t*>(h + m_.logit_rows);
  auto* bt = reinterpret_cast<int32_t*>(h + m_.block_tables);
  std::copy(b.token_ids.begin(), b.token_ids.end(), ids);
  std::copy(b.positions.begin(), b.positions.end(), pos);
  std::copy(b.slots.begin(), b.slots.end(), slots);
  std::copy(b.q_begin.begin(), b.q_begin.end(), qb);
  std::copy(b.context_lens.begin(), b.context_lens.end(), ctx);
  std::copy(b.logit_rows.begin(), b.logit_rows.end(), lr);
  // Padding (graphs): one token per extra sequence, context 0 (attention sees no key and
  // writes zeros), slot −1 (no KV write), its logit row computed and ignored.
  for (int64_t i = t; i < s.tokens; ++i) ids[i] = 0, pos[i] = 0, slots[i] = -1;
  for (int64_t i = ns; i < s.seqs; ++i) qb[i + 1] = qb[i] + 1, ctx[i] = 0;
  for (int64_t i = rows; i < s.logit_rows; ++i) lr[i] = i;
  for (int64_t q = 0; q < s.seqs; ++q)
    for (int64_t j = 0; j < s.table_stride; ++j)
      bt[q * s.table_stride + j] = q < ns && j < b.block_table_stride
                                       ? b.block_tables[static_cast<size_t>(q * b.block_table_stride + j)]
                                       : 0;
  auto copy = [&](size_t off, size_t bytes) {
    return cudaMemcpyAsync(meta_.as<unsigned char>(off), h + off, bytes, cudaMemcpyHostToDevice, stream_);
  };
  LONGCTX_CUDA_OK(copy(m_.ids, s.tokens * 4), "uploading token ids");
  LONGCTX_CUDA_OK(copy(m_.positions, s.tokens * 4), "uploading positions");
  LONGCTX_CUDA_OK(copy(m_.slots, s.tokens * 8), "uploading slots");
  LONGCTX_CUDA_OK(copy(m_.q_begin, (s.seqs + 1) * 8), "uploading q_begin");
  LONGCTX_CUDA_OK(copy(m_.context_lens, s.seqs * 8), "uploading context lengths");
  LONGCTX_CUDA_OK(copy(m_.logit_rows, s.logit_rows * 8), "uploading logit rows");
  LONGCTX_CUDA_OK(copy(m_.block_tables, s.seqs * s.table_stride * 4), "uploading block tables");
  if (causal_lens) {
    std::copy(causal_lens->begin(), causal_lens->end(), reinterpret_cast<int32_t*>(h + m_.causal_lens));
    LONGCTX_CUDA_OK(copy(m_.causal_lens, t * 4), "uploading causal lengths");
  }
  return Status::ok();
}

Status CudaDenseModel::enqueue_step(const StepShape& s) {
  const int64_t t = s.tokens, h = cfg_.hidden_size, d = cfg_.head_dim, hq = rs_.num_q_heads,
                hkv = rs_.num_kv_heads;
  const int64_t qw = hq * d, kvw = hkv * d, qkvw = qw + 2 * kvw, inter = rs_.intermediate;
  // TP: rank 0 adds its partial product (and the bias) to the residual, the others write
  // theirs over it; the all-reduce then leaves residual + Σ partials on every rank.
  Communicator* tp = spec_.layout.config().tp > 1 ? spec_.comms->tp.get() : nullptr;
  Communicator* pp = spec_.layout.config().pp > 1 ? spec_.comms->pp.get() : nullptr;
  const bool lead = !tp || tp->rank() == 0;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  const auto* ids = meta_.as<int32_t>(m_.ids);
  const auto* pos = meta_.as<int32_t>(m_.positions);
  const auto* slots = meta_.as<int64_t>(m_.slots);
  auto gemm = [&](const __nv_bfloat16* x, const __nv_bfloat16* w, const void* bias, void* y, DType yt,
                  int64_t m, int64_t n, int64_t k, bool acc, const char* what) -> Status {
    // One row (batch-1 decode): a pure pass over W, where skinny_linear beats cuBLASLt
    // (H100, Llama-3.1-8B: TPOT 6.33 vs 6.86 ms). At 8 rows it lost (17.4 vs 7.0 ms: each W
    // chunk then costs 8 x loads), so wider batches stay on cuBLASLt.
    if (m == 1 && k % 8 == 0) {
      SkinnyLinearParams sp;
      sp.x = x, sp.w = w, sp.bias = bias, sp.y = y, sp.y_dtype = yt, sp.m = m, sp.n = n, sp.k = k,
      sp.accumulate = acc;
      return cuda_status(skinny_linear(sp, stream_), what);
    }
    LinearParams lp;
    lp.x = x, lp.w = w, lp.bias = bias, lp.y = y, lp.y_dtype = yt, lp.m = m, lp.n = n, lp.k = k,
    lp.accumulate = acc;
    return cublas_status(linear(blas_, lp, stream_), what);
  };

  if (rs_.embed)
    LONGCTX_CUDA_OK(embedding_f32(ids, t, w_.embed_tokens, cfg_.vocab_size, h, a_.residual, stream_),
                    "embedding");
  else
    pp->recv(a_.residual, t * h, pp->rank() - 1);
  for (int64_t l = 0; l < rs_.num_layers; ++l) {
    const DeviceLayerWeights& lw = w_.layers[static_cast<size_t>(l)];
    LONGCTX_CUDA_OK(rms_norm_f32(a_.residual, nullptr, lw.input_norm, a_.normed, t, h, eps, stream_),
                    "input norm");
    LONGCTX_RETURN_IF_ERROR(
        gemm(a_.normed, lw.qkv, lw.qkv_bias, a_.qkv, DType::kBF16, t, qkvw, h, false, "qkv_proj"));
    if (cfg_.qk_norm) {
      LONGCTX_CUDA_OK(head_rms_norm(a_.qkv, t, hq, d, qkvw, lw.q_norm, eps, stream_), "q_norm");
      LONGCTX_CUDA_OK(head_rms_norm(a_.qkv + qw, t, hkv, d, qkvw, lw.k_norm, eps, stream_), "k_norm");
    }
    RopeKvParams rp;
    rp.q = a_.qkv;
    rp.q_stride = qkvw;
    rp.k = a_.qkv + qw;
    rp.v = a_.qkv + qw + kvw;
    rp.kv_stride = qkvw;
    rp.num_tokens = t, rp.num_q_heads = hq, rp.num_kv_heads = hkv, rp.head_dim = d;
    rp.rotary_dim = cfg_.rotary_dim();
    rp.positions = pos;
    rp.inv_freq = inv_freq_.as<double>();
    rp.slots = cp_.active() ? nullptr : slots;
    rp.k_cache = kv_.k(l);
    rp.v_cache = kv_.v(l);
    if (cp_.active()) rp.k_out = a_.qkv + qw;  // CP: k rotated in place, written by its owner below
    LONGCTX_CUDA_OK(rope_kv_write(rp, stream_), "rope + KV write");
    if (cp_.active()) {
      // CP: the K/V of the group's new tokens to the ranks that keep them, and attention of
      // this rank's queries over every member's keys (context_parallel.h).
      LONGCTX_RETURN_IF_ERROR(cp_.write_kv(a_.qkv + qw, qkvw, kvw, inv_freq_.as<double>(), cfg_.rotary_dim(),
                                           kv_.k(l), kv_.v(l), kv_.shape().block_size));
      LONGCTX_RETURN_IF_ERROR(cp_.attend(a_.qkv, qkvw, kv_.k(l), kv_.v(l), kv_.shape().block_size,
                                         attn_ws_.get(), attn_ws_.bytes(), a_.attn));
    } else {
      // DCP/KVP: attention over this rank's keys only, with the DCP group's queries, into
      // partial states that the exchange merges into a_.attn.
      const __nv_bfloat16* qa = a_.qkv;
      int64_t qa_stride = qkvw;
      if (exchange_.active())
        LONGCTX_RETURN_IF_ERROR(exchange_.gather_queries(a_.qkv, qkvw, t, &qa, &qa_stride));
      PagedAttentionParams ap;
      ap.num_seqs = s.seqs;
      ap.q = qa;
      ap.q_stride = qa_stride;
      ap.out = a_.attn;
      ap.out_f32 = exchange_.active() ? exchange_.partial_out() : nullptr;  // fp32 partials
      ap.lse = exchange_.active() ? exchange_.partial_lse() : nullptr;
      ap.causal_lens = placement_.shards_keys() ? meta_.as<int32_t>(m_.causal_lens) : nullptr;
      ap.k_cache = kv_.k(l);
      ap.v_cache = kv_.v(l);
      ap.block_size = kv_.shape().block_size;
      ap.q_begin = meta_.as<int64_t>(m_.q_begin);
      ap.context_lens = meta_.as<int64_t>(m_.context_lens);
      ap.block_tables = meta_.as<int32_t>(m_.block_tables);
      ap.block_table_stride = s.table_stride;
      ap.max_num_q = s.max_num_q;
      ap.max_context_len = s.max_context_len;
      ap.num_q_heads = exchange_.active() ? exchange_.num_attended_heads() : hq;
      ap.num_kv_heads = hkv, ap.head_dim = d;
      ap.workspace = attn_ws_.get();
      ap.workspace_bytes = attn_ws_.bytes();
      if (paged_attention_workspace_bytes(ap, t) > attn_ws_.bytes())
        return internal_error(
            "attention workspace of " + std::to_string(attn_ws_.bytes()) +
            " bytes is too small: " + std::to_string(paged_attention_workspace_bytes(ap, t)) + " needed");
      LONGCTX_CUDA_OK(paged_attention(ap, t, stream_), "paged attention");
      if (exchange_.active()) LONGCTX_RETURN_IF_ERROR(exchange_.merge(t, a_.attn));
    }
    LONGCTX_RETURN_IF_ERROR(gemm(a_.attn, lw.o_proj, lead ? lw.o_bias : nullptr, a_.residual, DType::kF32, t,
                                 h, qw, lead, "o_proj"));
    if (tp) tp->all_reduce_sum(a_.residual, t * h);

    LONGCTX_CUDA_OK(rms_norm_f32(a_.residual, nullptr, lw.post_attention_norm, a_.normed, t, h, eps, stream_),
                    "post-attention norm");
    if (lw.moe.router) {  // routed layer (cuda_moe_mlp.h; single rank, eager)
      LONGCTX_RETURN_IF_ERROR(
          moe_->forward(lw.moe, lw.post_attention_norm, eps, a_.normed, a_.residual, t, stream_));
      continue;
    }
    LONGCTX_RETURN_IF_ERROR(gemm(a_.normed, lw.gate_up, lw.gate_up_bias, a_.gate_up, DType::kBF16, t,
                                 2 * inter, h, false, "gate_up_proj"));
    LONGCTX_CUDA_OK(silu_mul(a_.gate_up, a_.gate_up + inter, a_.mlp_act, t, inter, 2 * inter, stream_),
                    "silu_mul");
    LONGCTX_RETURN_IF_ERROR(gemm(a_.mlp_act, lw.down, lead ? lw.down_bias : nullptr, a_.residual, DType::kF32,
                                 t, h, inter, lead, "down_proj"));
    if (tp) tp->all_reduce_sum(a_.residual, t * h);
  }
  if (!rs_.head) {
    pp->send(a_.residual, t * h, pp->rank() + 1);
    return Status::ok();
  }
  // Final norm and LM head for the wanted rows only, then greedy sampling.
  const int64_t r = s.logit_rows;
  LONGCTX_CUDA_OK(rms_norm_f32(a_.residual, meta_.as<int64_t>(m_.logit_rows), w_.final_norm, a_.final_normed,
                               r, h, eps, stream_),
                  "final norm");
  if (!a_.head_part) {
    LONGCTX_RETURN_IF_ERROR(gemm(a_.final_normed, w_.lm_head, nullptr, a_.logits, DType::kF32, r,
                                 cfg_.vocab_size, h, false, "lm_head"));
  } else {
    // Vocabulary split: gather [tp][rows][vocab / tp], lay it out as [rows][vocab].
    const int64_t lv = rs_.vocab_rows;
    LONGCTX_RETURN_IF_ERROR(
        gemm(a_.final_normed, w_.lm_head, nullptr, a_.head_part, DType::kF32, r, lv, h, false, "lm_head"));
    tp->all_gather(a_.head_part, r * lv, a_.head_all);
    for (int j = 0; j < tp->size(); ++j)
      LONGCTX_CUDA_OK(cudaMemcpy2DAsync(a_.logits + j * lv, static_cast<size_t>(cfg_.vocab_size) * 4,
                                        a_.head_all + j * r * lv, static_cast<size_t>(lv) * 4,
                                        static_cast<size_t>(lv) * 4, static_cast<size_t>(r),
                                        cudaMemcpyDeviceToDevice, stream_),
                      "laying out the gathered logits");
  }
  // CP: every requested row, from the rank that computed it, in the batch's order.
  if (cp_.active()) LONGCTX_RETURN_IF_ERROR(cp_.gather_logits(a_.logits));
  const int64_t rows = cp_.active() ? cp_.num_logit_rows() : r;
  LONGCTX_CUDA_OK(argmax(a_.logits, rows, cfg_.vocab_size, a_.argmax, stream_), "argmax");
  return Status::ok();
}

Status CudaDenseModel::run(const ForwardBatch& global, bool use_graphs) {
  LONGCTX_RETURN_IF_ERROR(validate(global));
  // DCP/KVP: the rank's own slots, key counts, block tables and causal lengths. CP: the
  // rank's share of the tokens (its attention metadata is the ContextParallelStep's).
  const bool local = placement_.shards_keys() && !cp_.active();
  if (local) placement_.localize(global, local_, causal_lens_);
  if (cp_.active()) LONGCTX_RETURN_IF_ERROR(cp_.plan(global, placement_, local_));
  const ForwardBatch& b = local || cp_.active() ? local_ : global;
  const int64_t t = b.num_tokens(), ns = b.num_seqs();
  StepShape s;
  s.tokens = t, s.seqs = ns, s.logit_rows = static_cast<int64_t>(b.logit_rows.size());
  s.table_stride = b.block_table_stride;
  int64_t max_ctx = 0;
  for (int64_t c : b.context_lens) max_ctx = std::max(max_ctx, c);
  for (int64_t i = 0; i < ns; ++i) s.max_num_q = std::max(s.max_num_q, b.q_begin[i + 1] - b.q_begin[i]);
  s.max_context_len = max_ctx;
  // A decode step (one new token per sequence, each with its logit row in order) is sized by
  // buckets, eager or replayed, so both run the same kernels with the same grids.
  // (Not for a rank's share of the keys: its tables are in its own blocks, and it runs eager.)
  bool decode = !placement_.shards_keys() && ns > 0 && t == ns && s.logit_rows == ns;
  for (int64_t i = 0; decode && i < ns; ++i) decode = b.logit_rows[static_cast<size_t>(i)] == i;
  const int64_t bs = kv_.shape().block_size;
  if (decode) {
    s.max_context_len = DecodeGraphs::context_bucket(max_ctx, max_blocks_per_seq_ * bs);
    s.table_stride = std::max(s.table_stride, (s.max_context_len + bs - 1) / bs);
  }
  const int64_t bucket = decode ? DecodeGraphs::batch_bucket(ns, opts_.max_num_seqs) : 0;
  // The padded step must fit the buffers sized for max_logit_rows and the block tables.
  const bool graph = use_graphs && opts_.cuda_graphs && decode && bucket > 0 && bucket <= max_rows_ &&
                     s.table_stride <= max_blocks_per_seq_ && spec_.layout.world_size() == 1 &&
                     !moe_;  // MoE steps bring their routing to the host: eager
  if (graph) s.tokens = s.seqs = s.logit_rows = bucket;
  try {
    LONGCTX_RETURN_IF_ERROR(stage(b, s, local ? &causal_lens_ : nullptr));
    if (global.num_tokens() == 0) return Status::ok();  // (a CP rank may have none of a step's tokens)
    if (graph) {
      LONGCTX_RETURN_IF_ERROR(
          graphs_.launch({bucket, s.max_context_len}, stream_, [&] { return enqueue_step(s); }));
    } else {
      LONGCTX_RETURN_IF_ERROR(enqueue_step(s));
    }
  } catch (const std::invalid_argument& e) {  // a kernel refused its parameters: a bug here
    return internal_error(std::string("CUDA forward: ") + e.what());
  } catch (const StatusError& e) {  // a collective failed (CommAborted goes on to run_on_ranks)
    return e.status();
  }
  return Status::ok();
}

Result<Tensor> CudaDenseModel::forward(const ForwardBatch& b, bool use_graphs) {
  LONGCTX_RETURN_IF_ERROR(run(b, use_graphs));
  if (!rs_.head) {
    LONGCTX_CUDA_OK(cudaStreamSynchronize(stream_), "the forward pass");
    return Tensor();
  }
  const int64_t rows = static_cast<int64_t>(b.logit_rows.size()), vocab = cfg_.vocab_size;
  Tensor out = Tensor::empty({rows, vocab}, DType::kF32);
  if (rows > 0) {
    LONGCTX_CUDA_OK(cudaMemcpyAsync(out_host_.as<float>(), a_.logits, static_cast<size_t>(rows * vocab) * 4,
                                    cudaMemcpyDeviceToHost, stream_),
                    "downloading logits");
  }
  LONGCTX_CUDA_OK(cudaStreamSynchronize(stream_), "the forward pass");
  if (rows > 0) std::memcpy(out.raw(), out_host_.as<float>(), static_cast<size_t>(rows * vocab) * 4);
  return out;
}

Result<std::vector<int32_t>> CudaDenseModel::forward_greedy(const ForwardBatch& b, bool use_graphs) {
  LONGCTX_RETURN_IF_ERROR(run(b, use_graphs));
  const size_t rows = rs_.head ? b.logit_rows.size() : 0;
  if (rows > 0)
    LONGCTX_CUDA_OK(
        cudaMemcpyAsync(out_host_.as<int32_t>(), a_.argmax, rows * 4, cudaMemcpyDeviceToHost, stream_),
        "downloading sampled tokens");
  LONGCTX_CUDA_OK(cudaStreamSynchronize(stream_), "the forward pass");
  return std::vector<int32_t>(out_host_.as<int32_t>(), out_host_.as<int32_t>() + rows);
}

Result<CudaDenseModel::RowsOut> CudaDenseModel::forward_rows(const ForwardBatch& b,
                                                             const std::vector<int64_t>& host_rows,
                                                             const std::vector<SamplingRow>* sampling,
                                                             bool use_graphs) {
  const int64_t rows = static_cast<int64_t>(b.logit_rows.size()), vocab = cfg_.vocab_size;
  if (sampling && (!can_sample_ || static_cast<int64_t>(sampling->size()) != rows))
    return invalid_argument(can_sample_
                                ? "forward_rows: one SamplingRow per logit row, got " +
                                      std::to_string(sampling->size()) + " for " + std::to_string(rows)
                                : "forward_rows: cuda::sample is not available in this build");
  for (size_t i = 0; i < host_rows.size(); ++i)
    if (host_rows[i] < 0 || host_rows[i] >= rows || (i > 0 && host_rows[i] <= host_rows[i - 1]))
      return invalid_argument("host_rows must be ascending indices into the batch's " + std::to_string(rows) +
                              " logit rows");
  LONGCTX_RETURN_IF_ERROR(run(b, use_graphs));
  if (!rs_.head) {
    LONGCTX_CUDA_OK(cudaStreamSynchronize(stream_), "the forward pass");
    return RowsOut{};
  }
  // out_host_ holds max_rows_ × vocab floats: the ids go after the host rows' logits.
  const size_t n_host = host_rows.size();
  const size_t row_bytes = static_cast<size_t>(vocab) * 4;
  float* host_logits = out_host_.as<float>();
  auto* host_ids = reinterpret_cast<int32_t*>(out_host_.as<unsigned char>() + n_host * row_bytes);
  if (n_host * row_bytes + static_cast<size_t>(rows) * 4 > out_host_.bytes())
    return internal_error("the host staging buffer cannot hold " + std::to_string(n_host) +
                          " logit rows and " + std::to_string(rows) + " ids");
  for (size_t i = 0; i < n_host;) {
    size_t j = i + 1;
    while (j < n_host && host_rows[j] == host_rows[j - 1] + 1) ++j;
    LONGCTX_CUDA_OK(cudaMemcpyAsync(host_logits + i * vocab, a_.logits + host_rows[i] * vocab,
                                    (j - i) * row_bytes, cudaMemcpyDeviceToHost, stream_),
                    "downloading logits");
    i = j;
  }
  // The drawn ids overwrite the argmax (the graph's last write; sampling runs after it).
  float* host_lp = nullptr;
  if (sampling && rows > 0) {
    std::memcpy(sampling_host_.as<SamplingRow>(), sampling->data(),
                static_cast<size_t>(rows) * sizeof(SamplingRow));
    LONGCTX_CUDA_OK(
        cudaMemcpyAsync(sampling_params_.get(), sampling_host_.as<SamplingRow>(),
                        static_cast<size_t>(rows) * sizeof(SamplingRow), cudaMemcpyHostToDevice, stream_),
        "uploading sampling parameters");
    LONGCTX_CUDA_OK(sample(a_.logits, rows, vocab, sampling_params_.as<SamplingRow>(), a_.argmax,
                           sampled_logprobs_.as<float>(), sample_ws_.get(), sample_ws_.bytes(), stream_),
                    "sampling");
    host_lp = reinterpret_cast<float*>(host_ids + rows);
    if (n_host * row_bytes + static_cast<size_t>(rows) * 8 > out_host_.bytes())
      return internal_error("the host staging buffer cannot hold the sampled logprobs");
    LONGCTX_CUDA_OK(cudaMemcpyAsync(host_lp, sampled_logprobs_.as<float>(), static_cast<size_t>(rows) * 4,
                                    cudaMemcpyDeviceToHost, stream_),
                    "downloading sampled logprobs");
  }
  if (rows > 0)
    LONGCTX_CUDA_OK(
        cudaMemcpyAsync(host_ids, a_.argmax, static_cast<size_t>(rows) * 4, cudaMemcpyDeviceToHost, stream_),
        "downloading sampled tokens");
  LONGCTX_CUDA_OK(cudaStreamSynchronize(stream_), "the forward pass");
  RowsOut out;
  out.tokens.assign(host_ids, host_ids + rows);
  if (host_lp) out.logprobs.assign(host_lp, host_lp + rows);
  out.logits = Tensor::empty({static_cast<int64_t>(n_host), vocab}, DType::kF32);
  if (n_host > 0) std::memcpy(out.logits.raw(), host_logits, n_host * row_bytes);
  return out;
}

Status CudaDenseModel::randomize_kv_cache(uint64_t seed) {
  const int64_t n = static_cast<int64_t>(kv_.bytes() / sizeof(__nv_bfloat16));
  LONGCTX_CUDA_OK(fill_uniform_bf16(kv_.k(0), n, seed, 1.0f, stream_), "filling the KV cache");
  LONGCTX_CUDA_OK(cudaStreamSynchronize(stream_), "filling the KV cache");
  return Status::ok();
}

}  // namespace longctx::cuda
