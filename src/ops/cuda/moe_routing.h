// The routing kernels of a mixture-of-experts MLP on the GPU (model_cuda/cuda_moe_mlp.h
// runs them around the grouped expert GEMMs of grouped_gemm.h):
//   moe_route        per token: the post-attention RMSNorm of the fp32 residual in fp32, the
//                    router logits in fp32 (fp32 router weights, as the CPU backend), softmax
//                    in fp64, the top k (best first; ties to the lower expert id, as
//                    model/moe_mlp.cpp's route_token) and their weights (renormalised over
//                    the k when asked: Mixtral always, Qwen3-MoE with norm_topk_prob);
//   moe_gather_rows  out[r] = x[src[r]]: the routed rows, sorted by expert;
//   moe_combine      residual[t] += Σ_j w[t, j] · y[pos[t, j]] (fp32; no atomics, each token's
//                    k contributions summed in order j = 0..k-1).
// Softmax scoring only (DeepSeek-V3's sigmoid/grouped choice is not here: MLA is CPU-only).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace longctx::cuda {

constexpr int64_t kMaxRoutedExperts = 512;  // shared-memory logits per token
constexpr int64_t kMaxRouteTopK = 32;
constexpr int64_t kMaxRouteHidden = 10240;  // the normed row (40 KiB) + logits in 48 KiB of shared memory

struct MoeRouteParams {
  const float* residual = nullptr;     // [num_tokens, hidden] fp32
  const float* norm_weight = nullptr;  // [hidden] (post_attention_layernorm)
  float eps = 1e-6f;
  const float* router = nullptr;  // [num_experts, hidden] fp32
  int64_t num_tokens = 0, hidden = 0, num_experts = 0, top_k = 0;
  bool normalize = true;           // renormalise the k weights to sum 1
  int32_t* expert_ids = nullptr;   // [num_tokens, top_k], best first
  float* weights = nullptr;        // [num_tokens, top_k]
};

// cudaErrorInvalidValue for null pointers or sizes out of the limits above.
cudaError_t moe_route(const MoeRouteParams& p, cudaStream_t stream);

// out[r, :] = x[src[r], :] for r < rows; width a multiple of 8.
cudaError_t moe_gather_rows(const __nv_bfloat16* x, int64_t width, const int32_t* src, int64_t rows,
                            __nv_bfloat16* out, cudaStream_t stream);

// residual[t, :] += Σ_j weights[t·k + j] · y[pos[t·k + j], :] for t < tokens.
cudaError_t moe_combine(const __nv_bfloat16* y, int64_t width, const int32_t* pos, const float* weights,
                        int64_t tokens, int64_t top_k, float* residual, cudaStream_t stream);

}  // namespace longctx::cuda
