#include <stdexcept>
#include <string>

#include "ops/cuda/common.cuh"
#include "ops/cuda/skinny_linear.h"

namespace longctx::cuda {
namespace {

using detail::Bf16x8;

constexpr int kWarps = 8;   // warps per block; each warp owns output columns n
constexpr int kUnroll = 4;  // 16-byte W loads in flight per lane

// One warp per output column n (a row of W): lanes stride k in 16-byte chunks, kUnroll
// chunks loaded before any is used, each chunk multiplied with the M rows of x.
template <int M, bool kF32Out>
__global__ void __launch_bounds__(kWarps * 32)
    skinny_linear_kernel(const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                         const void* __restrict__ bias, void* y, int64_t n, int64_t k, bool accumulate) {
  const int lane = threadIdx.x & 31;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (col >= n) return;
  const int64_t chunks = k / 8;
  const Bf16x8* wr = reinterpret_cast<const Bf16x8*>(w + col * k);
  float acc[M];
#pragma unroll
  for (int r = 0; r < M; ++r) acc[r] = 0.0f;
  for (int64_t c0 = lane; c0 < chunks; c0 += 32 * kUnroll) {
    // Weights are read once per step: stream them past L1/L2 (evict-first).
    uint4 wv[kUnroll] = {};
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t c = c0 + 32 * u;
      if (c < chunks) wv[u] = __ldcs(reinterpret_cast<const uint4*>(wr + c));
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t c = c0 + 32 * u;
      if (c >= chunks) break;
      float wf[8];
      detail::to_float8(*reinterpret_cast<const Bf16x8*>(&wv[u]), wf);
#pragma unroll
      for (int r = 0; r < M; ++r) {
        float xf[8];
        detail::to_float8(reinterpret_cast<const Bf16x8*>(x + r * k)[c], xf);
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[r] = fmaf(wf[j], xf[j], acc[r]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < M; ++r) acc[r] = detail::warp_sum(acc[r]);
  if (lane == 0) {
#pragma unroll
    for (int r = 0; r < M; ++r) {
      float v = acc[r];
      if constexpr (kF32Out) {
        float* yr = static_cast<float*>(y) + r * n + col;
        if (bias) v += static_cast<const float*>(bias)[col];
        if (accumulate) v += *yr;
        *yr = v;
      } else {
        __nv_bfloat16* yr = static_cast<__nv_bfloat16*>(y) + r * n + col;
        if (bias) v += __bfloat162float(static_cast<const __nv_bfloat16*>(bias)[col]);
        if (accumulate) v += __bfloat162float(*yr);
        *yr = __float2bfloat16(v);
      }
    }
  }
}

template <int M>
cudaError_t launch(const SkinnyLinearParams& p, cudaStream_t stream) {
  const unsigned grid = static_cast<unsigned>((p.n + kWarps - 1) / kWarps);
  if (p.y_dtype == DType::kF32)
    skinny_linear_kernel<M, true>
        <<<grid, kWarps * 32, 0, stream>>>(p.x, p.w, p.bias, p.y, p.n, p.k, p.accumulate);
  else
    skinny_linear_kernel<M, false>
        <<<grid, kWarps * 32, 0, stream>>>(p.x, p.w, p.bias, p.y, p.n, p.k, p.accumulate);
  return cudaGetLastError();
}

}  // namespace

cudaError_t skinny_linear(const SkinnyLinearParams& p, cudaStream_t stream) {
  auto fail = [](const std::string& what) { throw std::invalid_argument("skinny_linear: " + what); };
  if (p.m < 0 || p.n < 0 || p.k < 0) fail("negative size");
  if (p.m > kSkinnyMaxRows) fail("m " + std::to_string(p.m) + " is over " + std::to_string(kSkinnyMaxRows));
  if (p.y_dtype != DType::kBF16 && p.y_dtype != DType::kF32) fail("y_dtype must be bf16 or f32");
  if (p.m == 0 || p.n == 0 || p.k == 0) return cudaSuccess;
  if (p.k % 8 != 0) fail("k " + std::to_string(p.k) + " must be a multiple of 8");
  if (!detail::aligned16(p.x) || !detail::aligned16(p.w)) fail("x and W must be 16-byte aligned");
  switch (p.m) {
    case 1: return launch<1>(p, stream);
    case 2: return launch<2>(p, stream);
    case 3: return launch<3>(p, stream);
    case 4: return launch<4>(p, stream);
    case 5: return launch<5>(p, stream);
    case 6: return launch<6>(p, stream);
    case 7: return launch<7>(p, stream);
    default: return launch<8>(p, stream);
  }
}

}  // namespace longctx::cuda
