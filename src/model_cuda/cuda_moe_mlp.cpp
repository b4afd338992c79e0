#include "model_cuda/cuda_moe_mlp.h"

#include <algorithm>
#include <string>

#include "model_cuda/cuda_check.h"
#include "ops/cuda/activation.h"
#include "ops/cuda/moe_routing.h"

namespace longctx::cuda {
namespace {

size_t take(size_t& off, size_t bytes) {
  const size_t at = off;
  off += round_up_256(bytes);
  return at;
}

}  // namespace

Result<std::unique_ptr<CudaMoeMlp>> CudaMoeMlp::create(const ModelConfig& cfg, int64_t max_tokens,
                                                       const BlasContext& blas) {
  const int64_t ne = cfg.num_experts, k = cfg.num_experts_per_tok, h = cfg.hidden_size,
                mi = cfg.moe_intermediate_size;
  if (ne < 1 || ne > kMaxRoutedExperts || ne > kMaxGroupedExperts || k < 1 || k > kMaxRouteTopK || k > ne)
    return invalid_argument("the GPU MoE layer takes 1 to " + std::to_string(kMaxRoutedExperts) +
                            " experts and 1 to " + std::to_string(kMaxRouteTopK) + " per token (got " +
                            std::to_string(ne) + ", " + std::to_string(k) + ")");
  if (h > kMaxRouteHidden || mi < 1 || mi % 8 != 0)
    return invalid_argument("the GPU MoE layer needs hidden_size <= " + std::to_string(kMaxRouteHidden) +
                            " and moe_intermediate_size a multiple of 8 (got " + std::to_string(h) + ", " +
                            std::to_string(mi) + ")");
  std::unique_ptr<CudaMoeMlp> m(new CudaMoeMlp(cfg, max_tokens));
  const int64_t tk = max_tokens * k;  // routed rows of a full step
  size_t off = 0;
  const size_t o_ids = take(off, tk * 4), o_src = take(off, tk * 4), o_pos = take(off, tk * 4),
               o_w = take(off, tk * 4), o_x = take(off, tk * h * 2), o_gu = take(off, tk * 2 * mi * 2),
               o_act = take(off, tk * mi * 2), o_y = take(off, tk * h * 2);
  LONGCTX_ASSIGN_OR_RETURN(m->ws_, DeviceBuffer::allocate(off, "MoE activations for " +
                                                                   std::to_string(max_tokens) + " tokens"));
  m->d_.ids = m->ws_.as<int32_t>(o_ids);
  m->d_.src = m->ws_.as<int32_t>(o_src);
  m->d_.pos = m->ws_.as<int32_t>(o_pos);
  m->d_.weights = m->ws_.as<float>(o_w);
  m->d_.x = m->ws_.as<__nv_bfloat16>(o_x);
  m->d_.gate_up = m->ws_.as<__nv_bfloat16>(o_gu);
  m->d_.act = m->ws_.as<__nv_bfloat16>(o_act);
  m->d_.y = m->ws_.as<__nv_bfloat16>(o_y);
  // Host side: the ids down, then the sorted sources and each (token, j)'s row up.
  LONGCTX_ASSIGN_OR_RETURN(m->host_, HostStaging::allocate(static_cast<size_t>(3 * tk) * 4));
  LONGCTX_ASSIGN_OR_RETURN(m->pointers_, DeviceBuffer::allocate(grouped_gemm_pointer_bytes(),
                                                                "grouped GEMM pointer arrays"));
  m->gg_.lt = blas;
  LONGCTX_CUBLAS_OK(cublasCreate(&m->gg_.handle), "creating the cuBLAS handle (grouped GEMM)");
  m->gg_.pointer_arrays = m->pointers_.get();
  m->offsets_.assign(static_cast<size_t>(ne + 1), 0);
  m->fill_.assign(static_cast<size_t>(ne), 0);
  return m;
}

CudaMoeMlp::~CudaMoeMlp() {
  if (gg_.handle) cublasDestroy(gg_.handle);
}

Status CudaMoeMlp::forward(const DeviceMoeWeights& w, const float* post_norm, float eps,
                           const __nv_bfloat16* normed, float* residual, int64_t tokens, cudaStream_t stream) {
  const int64_t ne = cfg_.num_experts, k = cfg_.num_experts_per_tok, h = cfg_.hidden_size,
                mi = cfg_.moe_intermediate_size;
  if (tokens > max_tokens_)
    return internal_error("MoE step of " + std::to_string(tokens) + " tokens over the workspace's " +
                          std::to_string(max_tokens_));
  if (tokens == 0) return Status::ok();
  const int64_t rows = tokens * k;
  MoeRouteParams rp;
  rp.residual = residual, rp.norm_weight = post_norm, rp.eps = eps, rp.router = w.router;
  rp.num_tokens = tokens, rp.hidden = h, rp.num_experts = ne, rp.top_k = k;
  rp.normalize = cfg_.norm_topk_prob || cfg_.arch == Architecture::kMixtral;
  rp.expert_ids = d_.ids, rp.weights = d_.weights;
  LONGCTX_CUDA_OK(moe_route(rp, stream), "MoE routing");
  int32_t* ids = host_.as<int32_t>();
  int32_t* src = ids + rows;
  int32_t* pos = src + rows;
  LONGCTX_CUDA_OK(cudaMemcpyAsync(ids, d_.ids, static_cast<size_t>(rows) * 4, cudaMemcpyDeviceToHost, stream),
                  "downloading the MoE routing");
  LONGCTX_CUDA_OK(cudaStreamSynchronize(stream), "MoE routing");
  // Rows sorted by expert, tokens in order within one: offsets, sources, and each pick's row.
  std::fill(offsets_.begin(), offsets_.end(), 0);
  for (int64_t i = 0; i < rows; ++i) {
    if (ids[i] < 0 || ids[i] >= ne) return internal_error("MoE routing chose expert " + std::to_string(ids[i]));
    ++offsets_[static_cast<size_t>(ids[i]) + 1];
  }
  for (int64_t e = 0; e < ne; ++e) offsets_[static_cast<size_t>(e + 1)] += offsets_[static_cast<size_t>(e)];
  for (int64_t e = 0; e < ne; ++e) fill_[static_cast<size_t>(e)] = offsets_[static_cast<size_t>(e)];
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t r = fill_[static_cast<size_t>(ids[i])]++;
    src[r] = static_cast<int32_t>(i / k);
    pos[i] = static_cast<int32_t>(r);
  }
  LONGCTX_CUDA_OK(cudaMemcpyAsync(d_.src, src, static_cast<size_t>(rows) * 4, cudaMemcpyHostToDevice, stream),
                  "uploading the MoE row order");
  LONGCTX_CUDA_OK(cudaMemcpyAsync(d_.pos, pos, static_cast<size_t>(rows) * 4, cudaMemcpyHostToDevice, stream),
                  "uploading the MoE row order");
  LONGCTX_CUDA_OK(moe_gather_rows(normed, h, d_.src, rows, d_.x, stream), "MoE row gather");
  GroupedLinearParams gp;
  gp.x = d_.x, gp.w = w.gate_up, gp.y = d_.gate_up, gp.row_offsets = offsets_.data();
  gp.num_experts = ne, gp.n = 2 * mi, gp.k = h;
  LONGCTX_CUBLAS_OK(grouped_linear(gg_, gp, method_, stream), "MoE gate_up grouped GEMM");
  LONGCTX_CUDA_OK(silu_mul(d_.gate_up, d_.gate_up + mi, d_.act, rows, mi, 2 * mi, stream), "MoE silu_mul");
  gp.x = d_.act, gp.w = w.down, gp.y = d_.y, gp.n = h, gp.k = mi;
  LONGCTX_CUBLAS_OK(grouped_linear(gg_, gp, method_, stream), "MoE down grouped GEMM");
  LONGCTX_CUDA_OK(moe_combine(d_.y, h, d_.pos, d_.weights, tokens, k, residual, stream), "MoE combine");
  return Status::ok();
}

}  // namespace longctx::cuda
