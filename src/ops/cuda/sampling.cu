#include <cfloat>

#include "ops/cuda/sampling.h"

namespace longctx::cuda {
namespace {

constexpr int kThreads = 512;

// (value, index) with "better" = larger value, then lower index; NaN is never better.
__device__ __forceinline__ void take_better(float& v, int64_t& i, float v2, int64_t i2) {
  if (v2 > v || (v2 == v && i2 < i)) {
    v = v2;
    i = i2;
  }
}

__global__ void __launch_bounds__(kThreads) argmax_kernel(const float* logits, int64_t n, int32_t* out) {
  __shared__ float sv[32];
  __shared__ int64_t si[32];
  const float* row = logits + static_cast<int64_t>(blockIdx.x) * n;
  float best = -FLT_MAX;
  int64_t bi = n;  // "none yet": loses every tie
  for (int64_t j = threadIdx.x; j < n; j += kThreads) take_better(best, bi, row[j], j);
    // -inf logits: -inf > -FLT_MAX is false, so a row of -inf keeps bi = n; handled below.
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float v2 = __shfl_xor_sync(0xffffffffu, best, o);
    const int64_t i2 = __shfl_xor_sync(0xffffffffu, bi, o);
    take_better(best, bi, v2, i2);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    sv[warp] = best;
    si[warp] = bi;
  }
  __syncthreads();
  if (warp == 0) {
    best = lane < kThreads / 32 ? sv[lane] : -FLT_MAX;
    bi = lane < kThreads / 32 ? si[lane] : n;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float v2 = __shfl_xor_sync(0xffffffffu, best, o);
      const int64_t i2 = __shfl_xor_sync(0xffffffffu, bi, o);
      take_better(best, bi, v2, i2);
    }
    if (lane == 0) out[blockIdx.x] = static_cast<int32_t>(bi < n ? bi : 0);
  }
}

}  // namespace

cudaError_t argmax(const float* logits, int64_t rows, int64_t n, int32_t* out, cudaStream_t stream) {
  if (rows <= 0 || n <= 0) return cudaSuccess;
  argmax_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(logits, n, out);
  return cudaGetLastError();
}

}  // namespace longctx::cuda

namespace longctx::cuda {

size_t sample_workspace_bytes(int64_t rows, int64_t n) {
  (void)rows;
  (void)n;
  return 0;
}

cudaError_t sample(const float*, int64_t, int64_t, const SamplingRow*, int32_t*, float*, void*, size_t, cudaStream_t) {
  return cudaErrorNotSupported;  // stub: the kernel lands in the next commit
}

}  // namespace longctx::cuda
