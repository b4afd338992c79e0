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

}  // namespace

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
