#include "ops/cuda/activation.h"
#include "ops/cuda/common.cuh"

namespace longctx::cuda {
namespace {

using detail::Bf16x8;

__device__ __forceinline__ float silu(float g) { return g / (1.0f + __expf(-g)); }

// grid.x = rows, grid.y covers the columns; 16-byte accesses when everything is aligned.
template <bool kVec>
__global__ void silu_mul_kernel(const __nv_bfloat16* gate, const __nv_bfloat16* up, __nv_bfloat16* out,
                                int64_t n, int64_t in_stride) {
  const int64_t row = blockIdx.x;
  const int64_t j = (static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x) * (kVec ? 8 : 1);
  if (j >= n) return;
  const __nv_bfloat16* g = gate + row * in_stride + j;
  const __nv_bfloat16* u = up + row * in_stride + j;
  __nv_bfloat16* o = out + row * n + j;
  if constexpr (kVec) {
    float gf[8], uf[8];
    detail::to_float8(*reinterpret_cast<const Bf16x8*>(g), gf);
    detail::to_float8(*reinterpret_cast<const Bf16x8*>(u), uf);
#pragma unroll
    for (int i = 0; i < 8; ++i) gf[i] = silu(gf[i]) * uf[i];
    *reinterpret_cast<Bf16x8*>(o) = detail::from_float8(gf);
  } else {
    *o = __float2bfloat16(silu(__bfloat162float(*g)) * __bfloat162float(*u));
  }
}

}  // namespace

cudaError_t silu_mul(const __nv_bfloat16* gate, const __nv_bfloat16* up, __nv_bfloat16* out, int64_t rows,
                     int64_t n, int64_t in_stride, cudaStream_t stream) {
  if (rows <= 0 || n <= 0) return cudaSuccess;
  constexpr int kThreads = 256;
  const bool vec = n % 8 == 0 && in_stride % 8 == 0 && detail::aligned16(gate) && detail::aligned16(up) &&
                   detail::aligned16(out);
  const int64_t per_block = kThreads * (vec ? 8 : 1);
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>((n + per_block - 1) / per_block));
  if (vec)
    silu_mul_kernel<true><<<grid, kThreads, 0, stream>>>(gate, up, out, n, in_stride);
  else
    silu_mul_kernel<false><<<grid, kThreads, 0, stream>>>(gate, up, out, n, in_stride);
  return cudaGetLastError();
}

}  // namespace longctx::cuda
