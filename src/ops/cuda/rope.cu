#include <stdexcept>
#include <string>

#include "ops/cuda/common.cuh"
#include "ops/cuda/rope.h"

namespace longctx::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kUnitsPerLane = static_cast<int>(kMaxRotaryDim / 4 / 32);  // a unit = 2 rotary pairs

struct Pair4 {  // the 4 inputs of one unit, in the output's order (x1 of 2 pairs, x2 of 2 pairs)
  float a0, a1, b0, b1;
};

// grid.x = token; warp w handles heads w, w + kWarps, … of [q heads | kv heads].
__global__ void __launch_bounds__(kWarps * 32) rope_kv_kernel(RopeKvParams p) {
  extern __shared__ float cs[];  // [rot/2] cos, then [rot/2] sin, for this token
  const int64_t t = blockIdx.x;
  const int64_t D = p.head_dim, rot = p.rotary_dim, half = rot / 2;
  const double pos = static_cast<double>(p.positions[t]);
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
    double a = pos * p.inv_freq[i];
    a -= kTwoPi * rint(a / kTwoPi);  // exact enough in double; fp32 sincos of a small angle
    float s, c;
    sincosf(static_cast<float>(a), &s, &c);
    cs[i] = c;
    cs[half + i] = s;
  }
  __syncthreads();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t slot = p.slots ? p.slots[t] : -1;
  const int64_t heads = (p.q ? p.num_q_heads : 0) + p.num_kv_heads;
  const int64_t q_heads = p.q ? p.num_q_heads : 0;
  const int64_t units = rot / 4;
  for (int64_t hh = warp; hh < heads; hh += kWarps) {
    const bool is_q = hh < q_heads;
    const int64_t kh = hh - q_heads;
    const __nv_bfloat16* src = is_q ? p.q + t * p.q_stride + hh * D : p.k + t * p.kv_stride + kh * D;
    __nv_bfloat16* dst0 =
        is_q ? p.q + t * p.q_stride + hh * D : (p.k_out ? p.k_out + t * p.kv_stride + kh * D : nullptr);
    __nv_bfloat16* dst1 = (!is_q && slot >= 0) ? p.k_cache + (slot * p.num_kv_heads + kh) * D : nullptr;
    Pair4 in[kUnitsPerLane];
#pragma unroll
    for (int i = 0; i < kUnitsPerLane; ++i) {
      const int64_t u = lane + 32 * i;
      if (u < units) {
        if (p.style == RopeStyle::kRotateHalf) {
          const float2 x1 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(src + 2 * u));
          const float2 x2 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(src + half + 2 * u));
          in[i] = {x1.x, x1.y, x2.x, x2.y};
        } else {  // x[4u..4u+3] = (x1 of pair 2u, x2 of pair 2u, x1 of pair 2u+1, x2 of pair 2u+1)
          const float2 lo = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(src + 4 * u));
          const float2 hi = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(src + 4 * u + 2));
          in[i] = {lo.x, hi.x, lo.y, hi.y};
        }
      }
    }
    __syncwarp();  // every read of this head happened before any write (in-place q, k_out == k)
#pragma unroll
    for (int i = 0; i < kUnitsPerLane; ++i) {
      const int64_t u = lane + 32 * i;
      if (u < units) {
        const float c0 = cs[2 * u], c1 = cs[2 * u + 1], s0 = cs[half + 2 * u], s1 = cs[half + 2 * u + 1];
        const __nv_bfloat162 o1 =
            __floats2bfloat162_rn(in[i].a0 * c0 - in[i].b0 * s0, in[i].a1 * c1 - in[i].b1 * s1);
        const __nv_bfloat162 o2 =
            __floats2bfloat162_rn(in[i].b0 * c0 + in[i].a0 * s0, in[i].b1 * c1 + in[i].a1 * s1);
        if (dst0) {
          *reinterpret_cast<__nv_bfloat162*>(dst0 + 2 * u) = o1;
          *reinterpret_cast<__nv_bfloat162*>(dst0 + half + 2 * u) = o2;
        }
        if (dst1) {
          *reinterpret_cast<__nv_bfloat162*>(dst1 + 2 * u) = o1;
          *reinterpret_cast<__nv_bfloat162*>(dst1 + half + 2 * u) = o2;
        }
      }
    }
    if (!is_q) {
      for (int64_t j = rot + 2 * lane; j < D; j += 64) {  // non-rotary dims of k, unchanged
        const __nv_bfloat162 x = *reinterpret_cast<const __nv_bfloat162*>(src + j);
        if (dst0 && dst0 != src) *reinterpret_cast<__nv_bfloat162*>(dst0 + j) = x;
        if (dst1) *reinterpret_cast<__nv_bfloat162*>(dst1 + j) = x;
      }
      if (slot >= 0) {  // v: a straight copy into its slot
        const __nv_bfloat16* vs = p.v + t * p.kv_stride + kh * D;
        __nv_bfloat16* vd = p.v_cache + (slot * p.num_kv_heads + kh) * D;
        for (int64_t j = 2 * lane; j < D; j += 64)
          *reinterpret_cast<__nv_bfloat162*>(vd + j) = *reinterpret_cast<const __nv_bfloat162*>(vs + j);
      }
    }
  }
}

}  // namespace

cudaError_t rope_kv_write(const RopeKvParams& p_in, cudaStream_t stream) {
  RopeKvParams p = p_in;
  if (p.num_tokens <= 0) return cudaSuccess;
  if (p.rotary_dim == 0) p.rotary_dim = p.head_dim;
  if (p.q_stride == 0) p.q_stride = p.num_q_heads * p.head_dim;
  if (p.kv_stride == 0) p.kv_stride = p.num_kv_heads * p.head_dim;
  auto fail = [](const std::string& what) { throw std::invalid_argument("rope_kv_write: " + what); };
  if (p.head_dim <= 0 || p.head_dim % 2 != 0)
    fail("head_dim " + std::to_string(p.head_dim) + " must be positive and even");
  if (p.rotary_dim % 4 != 0 || p.rotary_dim > p.head_dim || p.rotary_dim > kMaxRotaryDim)
    fail("rotary_dim " + std::to_string(p.rotary_dim) +
         " must be a multiple of 4, <= head_dim and <= " + std::to_string(kMaxRotaryDim));
  if (p.q_stride % 2 != 0 || p.kv_stride % 2 != 0) fail("token strides must be even (4-byte accesses)");
  if (!p.k || !p.positions || !p.inv_freq) fail("k, positions and inv_freq are required");
  if (p.slots && (!p.v || !p.k_cache || !p.v_cache)) fail("a cache write needs v, k_cache and v_cache");
  const size_t smem = static_cast<size_t>(p.rotary_dim) * sizeof(float);
  rope_kv_kernel<<<static_cast<unsigned>(p.num_tokens), kWarps * 32, smem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace longctx::cuda
