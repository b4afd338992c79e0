#include <algorithm>

#include "ops/cuda/fill.h"

namespace longctx::cuda {
namespace {

// splitmix64's finaliser: a cheap, well-mixed hash of the element index.
__device__ __forceinline__ uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

__global__ void fill_uniform_bf16_kernel(__nv_bfloat16* x, int64_t n, uint64_t seed, float bound) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const uint64_t h = mix64(seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(i));
    const float u = static_cast<float>(h >> 40) * (1.0f / 16777216.0f);  // [0, 1), 24 bits
    x[i] = __float2bfloat16((2.0f * u - 1.0f) * bound);
  }
}

__global__ void fill_f32_kernel(float* x, int64_t n, float value) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    x[i] = value;
}

unsigned grid_for(int64_t n) { return static_cast<unsigned>(std::min<int64_t>((n + 255) / 256, 65536)); }

}  // namespace

cudaError_t fill_uniform_bf16(__nv_bfloat16* x, int64_t n, uint64_t seed, float bound, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  fill_uniform_bf16_kernel<<<grid_for(n), 256, 0, stream>>>(x, n, seed, bound);
  return cudaGetLastError();
}

cudaError_t fill_f32(float* x, int64_t n, float value, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  fill_f32_kernel<<<grid_for(n), 256, 0, stream>>>(x, n, value);
  return cudaGetLastError();
}

}  // namespace longctx::cuda
