// RMSNorm on bf16 rows with fp32 math (transformers' LlamaRMSNorm: the mean of squares and
// the scaling in fp32, one rounding to bf16 at the end). One thread block per row.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace longctx::cuda {

// out[r,:] = x[r,:] / sqrt(mean(x[r,:]²) + eps) · weight. out may alias x.
// dim must be a multiple of 8 (16-byte accesses); throws std::invalid_argument otherwise.
// Returns the launch error (cudaGetLastError after the launch).
cudaError_t rms_norm(const __nv_bfloat16* x, const __nv_bfloat16* weight, __nv_bfloat16* out, int64_t rows,
                     int64_t dim, float eps, cudaStream_t stream);

// The fused "add + norm" between sublayers: residual[r,:] = bf16(residual[r,:] + x[r,:]);
// out[r,:] = rmsnorm(residual[r,:]) · weight (the norm of the stored, rounded residual, as
// transformers does in bf16). out may alias x.
cudaError_t add_rms_norm(__nv_bfloat16* residual, const __nv_bfloat16* x, const __nv_bfloat16* weight,
                         __nv_bfloat16* out, int64_t rows, int64_t dim, float eps, cudaStream_t stream);

// The model's norms over an fp32 residual stream (the CPU backend's precision): out[r,:] =
// bf16(x[src(r),:] / sqrt(mean(x[src(r),:]²) + eps) · weight), weight fp32, where src(r) =
// row_index[r] (device, e.g. the rows whose logits are wanted) or r when row_index is null.
// dim % 4 == 0. out must not alias x.
cudaError_t rms_norm_f32(const float* x, const int64_t* row_index, const float* weight, __nv_bfloat16* out,
                         int64_t rows, int64_t dim, float eps, cudaStream_t stream);

// Qwen3's q_norm / k_norm: RMSNorm over each head's vector, in place, on bf16 rows of
// `heads` heads of head_dim at x + t·token_stride (a slice of the fused qkv output), fp32
// math and weight [head_dim]. One warp per (token, head).
cudaError_t head_rms_norm(__nv_bfloat16* x, int64_t tokens, int64_t heads, int64_t head_dim,
                          int64_t token_stride, const float* weight, float eps, cudaStream_t stream);

}  // namespace longctx::cuda
