#include <cuda_bf16.h>

#include <cmath>
#include <stdexcept>

#include "ops/cuda/attention.h"

namespace longctx::cuda {
namespace {

__device__ __forceinline__ float load(const float* p) { return *p; }
__device__ __forceinline__ float load(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16(v); }

// One warp per row. The weights are computed before any write, so o_out/lse_out may alias
// an input (each row is read and written by its own warp only).
template <typename T>
__global__ void merge_kernel(const T* o_a, const float* lse_a, const T* o_b, const float* lse_b, T* o_out,
                             float* lse_out, int64_t rows, int64_t d) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  const float a = lse_a[row], b = lse_b[row];
  const float m = fmaxf(a, b);
  float wa = 0.0f, wb = 0.0f, lse = -INFINITY;
  if (m != -INFINITY) {  // at least one side has keys; a −inf side gets weight exp(−inf) = 0
    const float ea = expf(a - m), eb = expf(b - m);
    const float s = ea + eb;
    wa = ea / s;
    wb = eb / s;
    lse = m + logf(s);
  }
  __syncwarp();
  for (int64_t j = lane; j < d; j += 32) {
    // Never read a dropped side: its o may be garbage (NaN · 0 would be NaN).
    const float va = wa != 0.0f ? wa * load(o_a + row * d + j) : 0.0f;
    const float vb = wb != 0.0f ? wb * load(o_b + row * d + j) : 0.0f;
    store(o_out + row * d + j, va + vb);
  }
  __syncwarp();
  if (lane == 0) lse_out[row] = lse;
}

// The n-way merge (MergeStatesParams), one warp per row. Every lane computes the row's max
// and weight sum itself, in state order, so every lane (and every rank) gets the same bits.
template <typename T>
__global__ void merge_n_kernel(const MergeStatesParams p, T* out) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x & 31;
  if (row >= p.rows) return;
  const int64_t n = p.num_states, d = p.head_dim;
  float m = -INFINITY;
  for (int64_t j = 0; j < n; ++j) m = fmaxf(m, p.lse[j * p.lse_state_stride + row]);
  float s = 0.0f;
  if (m != -INFINITY)
    for (int64_t j = 0; j < n; ++j) s += expf(p.lse[j * p.lse_state_stride + row] - m);  // −inf: 0
  const float inv = s > 0.0f ? 1.0f / s : 0.0f;
  for (int64_t k = lane; k < d; k += 32) {
    float acc = 0.0f;
    if (m != -INFINITY)
      for (int64_t j = 0; j < n; ++j) {
        const float w = expf(p.lse[j * p.lse_state_stride + row] - m) * inv;
        // Never read a dropped state: its o may be garbage (NaN · 0 would be NaN).
        if (w != 0.0f) acc += w * p.o[j * p.o_state_stride + row * d + k];
      }
    store(out + row * d + k, acc);
  }
  __syncwarp();
  if (lane == 0 && p.lse_out) p.lse_out[row] = m != -INFINITY ? m + logf(s) : -INFINITY;
}

}  // namespace

cudaError_t merge_attention_states(const MergeStatesParams& p, cudaStream_t stream) {
  if (p.num_states < 1) throw std::invalid_argument("merge_attention_states: num_states must be >= 1");
  if (p.out_dtype != DType::kBF16 && p.out_dtype != DType::kF32)
    throw std::invalid_argument("merge_attention_states: out_dtype must be bf16 or f32");
  if (p.rows <= 0) return cudaSuccess;
  constexpr int kWarps = 8;
  const unsigned grid = static_cast<unsigned>((p.rows + kWarps - 1) / kWarps);
  if (p.out_dtype == DType::kBF16)
    merge_n_kernel<__nv_bfloat16><<<grid, kWarps * 32, 0, stream>>>(p, static_cast<__nv_bfloat16*>(p.out));
  else
    merge_n_kernel<float><<<grid, kWarps * 32, 0, stream>>>(p, static_cast<float*>(p.out));
  return cudaGetLastError();
}

cudaError_t merge_attention_states(const void* o_a, const float* lse_a, const void* o_b, const float* lse_b,
                                   void* o_out, float* lse_out, int64_t rows, int64_t head_dim, DType o_dtype,
                                   cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  constexpr int kWarps = 8;
  const unsigned grid = static_cast<unsigned>((rows + kWarps - 1) / kWarps);
  if (o_dtype == DType::kBF16) {
    using T = __nv_bfloat16;
    merge_kernel<T><<<grid, kWarps * 32, 0, stream>>>(static_cast<const T*>(o_a), lse_a,
                                                      static_cast<const T*>(o_b), lse_b,
                                                      static_cast<T*>(o_out), lse_out, rows, head_dim);
  } else if (o_dtype == DType::kF32) {
    merge_kernel<float><<<grid, kWarps * 32, 0, stream>>>(
        static_cast<const float*>(o_a), lse_a, static_cast<const float*>(o_b), lse_b,
        static_cast<float*>(o_out), lse_out, rows, head_dim);
  } else {
    throw std::invalid_argument("merge_attention_states: o_dtype must be bf16 or f32");
  }
  return cudaGetLastError();
}

}  // namespace longctx::cuda
