#include "model_cuda/attention_exchange.h"

#include <algorithm>

#include "model_cuda/cuda_check.h"
#include "ops/cuda/attention.h"

namespace longctx::cuda {
namespace {

constexpr int64_t kBf16 = 2, kF32 = 4;

int64_t round_up_floats(int64_t bytes) {
  return static_cast<int64_t>(round_up_256(static_cast<size_t>(bytes))) / kF32;
}

size_t take(size_t& off, int64_t bytes) {
  const size_t at = off;
  off += round_up_256(static_cast<size_t>(bytes));
  return at;
}

}  // namespace

Result<AttentionExchange> AttentionExchange::create(const AttentionExchangeDims& dims, Communicator* dcp,
                                                    Communicator* kvp, cudaStream_t stream) {
  AttentionExchange x;
  x.dims_ = dims;
  x.dcp_ = dcp && dcp->size() > 1 ? dcp : nullptr;
  x.kvp_ = kvp && kvp->size() > 1 ? kvp : nullptr;
  x.stream_ = stream;
  if (!x.active()) return x;
  const int64_t T = dims.max_tokens, hq = dims.num_q_heads, d = dims.head_dim;
  const int64_t D = x.members_dcp(), K = x.kvp_ ? x.kvp_->size() : 1;
  const int64_t chunk = x.chunk_floats(T);
  size_t off = 0;
  const size_t o_mine = take(off, D > 1 ? T * hq * d * kBf16 : 0),
               o_all = take(off, D > 1 ? D * T * hq * d * kBf16 : 0),
               o_gath = take(off, D > 1 ? T * D * hq * d * kBf16 : 0),
               o_po = take(off, T * D * hq * d * kF32), o_pl = take(off, T * D * hq * kF32),
               o_send = take(off, D * chunk * kF32), o_recv = take(off, std::max(D, K) * chunk * kF32);
  LONGCTX_ASSIGN_OR_RETURN(x.buf_, DeviceBuffer::allocate(off, "the attention exchange's buffers"));
  if (D > 1) {
    x.q_mine_ = x.buf_.as<__nv_bfloat16>(o_mine);
    x.q_all_ = x.buf_.as<__nv_bfloat16>(o_all);
    x.q_gathered_ = x.buf_.as<__nv_bfloat16>(o_gath);
  }
  x.po_ = x.buf_.as<float>(o_po);
  x.pl_ = x.buf_.as<float>(o_pl);
  x.send_ = x.buf_.as<float>(o_send);
  x.recv_ = x.buf_.as<float>(o_recv);
  return x;
}

int64_t AttentionExchange::chunk_floats(int64_t t) const {
  const int64_t rows = t * dims_.num_q_heads;
  return round_up_floats(rows * dims_.head_dim * kF32) + round_up_floats(rows * kF32);
}

Status AttentionExchange::gather_queries(const __nv_bfloat16* q, int64_t q_stride, int64_t t,
                                         const __nv_bfloat16** qa, int64_t* qa_stride) {
  if (!dcp_) {
    *qa = q, *qa_stride = q_stride;
    return Status::ok();
  }
  const int64_t D = members_dcp(), w = dims_.num_q_heads * dims_.head_dim;  // one member's row
  // Pack this rank's query heads (rows of the wider q|k|v buffer), gather them, and lay the
  // members' heads side by side per token: [t, D·hq, d], member j's at j·hq.
  LONGCTX_CUDA_OK(cudaMemcpy2DAsync(q_mine_, w * kBf16, q, q_stride * kBf16, w * kBf16, t,
                                    cudaMemcpyDeviceToDevice, stream_),
                  "DCP: packing the queries");
  dcp_->all_gather(reinterpret_cast<const float*>(q_mine_), t * w * kBf16 / kF32,
                   reinterpret_cast<float*>(q_all_));
  for (int64_t j = 0; j < D; ++j)
    LONGCTX_CUDA_OK(cudaMemcpy2DAsync(q_gathered_ + j * w, D * w * kBf16, q_all_ + j * t * w, w * kBf16,
                                      w * kBf16, t, cudaMemcpyDeviceToDevice, stream_),
                    "DCP: laying out the gathered queries");
  *qa = q_gathered_, *qa_stride = D * w;
  return Status::ok();
}

Status AttentionExchange::merge(int64_t t, __nv_bfloat16* out) {
  const int64_t D = members_dcp(), hq = dims_.num_q_heads, d = dims_.head_dim, rows = t * hq;
  const int64_t chunk = chunk_floats(t), lse_at = round_up_floats(rows * d * kF32);
  // Merges `count` members' states at src + j·chunk, in member order, into o (bf16: the
  // layer's attention output; fp32: this rank's DCP-merged state that KVP exchanges next).
  auto merge_members = [&](const float* src, int64_t count, void* o, DType o_dtype, float* lse) -> Status {
    MergeStatesParams mp;
    mp.o = src, mp.o_state_stride = chunk;
    mp.lse = src + lse_at, mp.lse_state_stride = chunk;
    mp.num_states = count, mp.rows = rows, mp.head_dim = d;
    mp.out = o, mp.out_dtype = o_dtype, mp.lse_out = lse;
    LONGCTX_CUDA_OK(merge_attention_states(mp, stream_), "merging partial attention");
    return Status::ok();
  };
  // This rank's state of its own heads, as one chunk at send_ (KVP gathers it from there).
  float* mine_o = send_;
  float* mine_l = send_ + lse_at;
  if (dcp_) {
    // Member j gets this rank's state of j's heads: [t, hq, d] columns j·hq.. of [t, D·hq, d].
    for (int64_t j = 0; j < D; ++j) {
      float* c = send_ + j * chunk;
      LONGCTX_CUDA_OK(cudaMemcpy2DAsync(c, hq * d * kF32, po_ + j * hq * d, D * hq * d * kF32, hq * d * kF32,
                                        t, cudaMemcpyDeviceToDevice, stream_),
                      "DCP: packing partial outputs");
      LONGCTX_CUDA_OK(cudaMemcpy2DAsync(c + lse_at, hq * kF32, pl_ + j * hq, D * hq * kF32, hq * kF32, t,
                                        cudaMemcpyDeviceToDevice, stream_),
                      "DCP: packing partial LSEs");
    }
    dcp_->all_to_all(send_, chunk, recv_);
    if (!kvp_) return merge_members(recv_, D, out, DType::kBF16, nullptr);
    LONGCTX_RETURN_IF_ERROR(merge_members(recv_, D, mine_o, DType::kF32, mine_l));
  } else {
    LONGCTX_CUDA_OK(cudaMemcpyAsync(mine_o, po_, rows * d * kF32, cudaMemcpyDeviceToDevice, stream_),
                    "KVP: packing partial outputs");
    LONGCTX_CUDA_OK(cudaMemcpyAsync(mine_l, pl_, rows * kF32, cudaMemcpyDeviceToDevice, stream_),
                    "KVP: packing partial LSEs");
  }
  kvp_->all_gather(send_, chunk, recv_);
  return merge_members(recv_, kvp_->size(), out, DType::kBF16, nullptr);
}

}  // namespace longctx::cuda
