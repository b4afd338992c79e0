#include <stdexcept>
#include <string>

#include "ops/cuda/common.cuh"
#include "ops/cuda/norm.h"

namespace longctx::cuda {
namespace {

using detail::Bf16x8;

constexpr int kThreads = 256;

// One block per row. kAdd: residual += x first (stored rounded to bf16), then the norm of
// the stored residual. The row is read twice (the second read hits L1/L2).
template <bool kAdd>
__global__ void __launch_bounds__(kThreads)
    rms_norm_kernel(__nv_bfloat16* __restrict__ residual, const __nv_bfloat16* x, const __nv_bfloat16* weight,
                    __nv_bfloat16* out, int64_t dim, float eps) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const int64_t nvec = dim / 8;
  const Bf16x8* xr = reinterpret_cast<const Bf16x8*>(x + row * dim);
  Bf16x8* rr = kAdd ? reinterpret_cast<Bf16x8*>(residual + row * dim) : nullptr;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < nvec; i += kThreads) {
    float f[8];
    detail::to_float8(xr[i], f);
    if constexpr (kAdd) {
      float r[8];
      detail::to_float8(rr[i], r);
#pragma unroll
      for (int j = 0; j < 8; ++j) r[j] += f[j];
      const Bf16x8 s = detail::from_float8(r);
      rr[i] = s;
      detail::to_float8(s, f);  // the norm sees the stored (rounded) residual
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) ss += f[j] * f[j];
  }
  ss = detail::block_sum(ss, scratch);
  const float inv = rsqrtf(ss / static_cast<float>(dim) + eps);
  const Bf16x8* src = kAdd ? reinterpret_cast<const Bf16x8*>(residual + row * dim) : xr;
  const Bf16x8* wr = reinterpret_cast<const Bf16x8*>(weight);
  Bf16x8* orow = reinterpret_cast<Bf16x8*>(out + row * dim);
  for (int64_t i = threadIdx.x; i < nvec; i += kThreads) {
    float f[8], w[8];
    detail::to_float8(src[i], f);
    detail::to_float8(wr[i], w);
#pragma unroll
    for (int j = 0; j < 8; ++j) f[j] = f[j] * inv * w[j];
    orow[i] = detail::from_float8(f);
  }
}

void check_dim(const char* op, int64_t dim, const void* a, const void* b, const void* c) {
  if (dim <= 0 || dim % 8 != 0)
    throw std::invalid_argument(std::string(op) + ": dim " + std::to_string(dim) +
                                " must be a positive multiple of 8");
  if (!detail::aligned16(a) || !detail::aligned16(b) || !detail::aligned16(c))
    throw std::invalid_argument(std::string(op) + ": pointers must be 16-byte aligned");
}

// fp32 rows (optionally gathered through row_index) → bf16, float4 accesses.
__global__ void __launch_bounds__(kThreads)
    rms_norm_f32_kernel(const float* x, const int64_t* row_index, const float* weight, __nv_bfloat16* out,
                        int64_t dim, float eps) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const int64_t src = row_index ? row_index[row] : row;
  const float4* xr = reinterpret_cast<const float4*>(x + src * dim);
  const float4* wr = reinterpret_cast<const float4*>(weight);
  const int64_t nvec = dim / 4;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < nvec; i += kThreads) {
    const float4 v = xr[i];
    ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
  }
  ss = detail::block_sum(ss, scratch);
  const float inv = rsqrtf(ss / static_cast<float>(dim) + eps);
  __nv_bfloat162* orow = reinterpret_cast<__nv_bfloat162*>(out + row * dim);
  for (int64_t i = threadIdx.x; i < nvec; i += kThreads) {
    const float4 v = xr[i], w = wr[i];
    orow[2 * i] = __floats2bfloat162_rn(v.x * inv * w.x, v.y * inv * w.y);
    orow[2 * i + 1] = __floats2bfloat162_rn(v.z * inv * w.z, v.w * inv * w.w);
  }
}

// One warp per (token, head); lanes stride over the head's elements.
__global__ void head_rms_norm_kernel(__nv_bfloat16* x, int64_t tokens, int64_t heads, int64_t head_dim,
                                     int64_t token_stride, const float* weight, float eps) {
  const int64_t item = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x & 31;
  if (item >= tokens * heads) return;
  __nv_bfloat16* v = x + (item / heads) * token_stride + (item % heads) * head_dim;
  float ss = 0.0f;
  for (int64_t i = lane; i < head_dim; i += 32) {
    const float f = __bfloat162float(v[i]);
    ss += f * f;
  }
  ss = detail::warp_sum(ss);
  const float inv = rsqrtf(ss / static_cast<float>(head_dim) + eps);
  for (int64_t i = lane; i < head_dim; i += 32)
    v[i] = __float2bfloat16(__bfloat162float(v[i]) * inv * weight[i]);
}

}  // namespace

cudaError_t rms_norm_f32(const float* x, const int64_t* row_index, const float* weight, __nv_bfloat16* out,
                         int64_t rows, int64_t dim, float eps, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  if (dim <= 0 || dim % 4 != 0)
    throw std::invalid_argument("rms_norm_f32: dim " + std::to_string(dim) +
                                " must be a positive multiple of 4");
  if (!detail::aligned16(x) || !detail::aligned16(weight))
    throw std::invalid_argument("rms_norm_f32: x and weight must be 16-byte aligned");
  rms_norm_f32_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(x, row_index, weight, out, dim,
                                                                            eps);
  return cudaGetLastError();
}

cudaError_t head_rms_norm(__nv_bfloat16* x, int64_t tokens, int64_t heads, int64_t head_dim,
                          int64_t token_stride, const float* weight, float eps, cudaStream_t stream) {
  const int64_t items = tokens * heads;
  if (items <= 0) return cudaSuccess;
  constexpr int kWarps = 8;
  head_rms_norm_kernel<<<static_cast<unsigned>((items + kWarps - 1) / kWarps), kWarps * 32, 0, stream>>>(
      x, tokens, heads, head_dim, token_stride, weight, eps);
  return cudaGetLastError();
}

cudaError_t rms_norm(const __nv_bfloat16* x, const __nv_bfloat16* weight, __nv_bfloat16* out, int64_t rows,
                     int64_t dim, float eps, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  check_dim("rms_norm", dim, x, weight, out);
  rms_norm_kernel<false>
      <<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(nullptr, x, weight, out, dim, eps);
  return cudaGetLastError();
}

cudaError_t add_rms_norm(__nv_bfloat16* residual, const __nv_bfloat16* x, const __nv_bfloat16* weight,
                         __nv_bfloat16* out, int64_t rows, int64_t dim, float eps, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  check_dim("add_rms_norm", dim, x, weight, out);
  check_dim("add_rms_norm", dim, residual, residual, residual);
  rms_norm_kernel<true>
      <<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(residual, x, weight, out, dim, eps);
  return cudaGetLastError();
}

}  // namespace longctx::cuda
