#include "ops/cuda/moe_routing.h"

namespace longctx::cuda {
namespace {

constexpr int kRouteThreads = 256;

__device__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// One block per token.
__global__ void route_kernel(MoeRouteParams p) {
  extern __shared__ float xs[];  // [hidden]: the normed row
  __shared__ float logits[kMaxRoutedExperts];
  __shared__ double prob[kMaxRoutedExperts];
  __shared__ double red[kRouteThreads / 32];
  const int64_t t = blockIdx.x, h = p.hidden;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  const float* x = p.residual + t * h;
  double ss = 0;
  for (int64_t i = threadIdx.x; i < h; i += blockDim.x) ss += double(x[i]) * x[i];
  ss = warp_sum(ss);
  if (lane == 0) red[warp] = ss;
  __syncthreads();
  double total = 0;
  for (int w = 0; w < nwarps; ++w) total += red[w];
  // As the CPU's rms_norm: x · (1/√(mean + eps)) · w, the scale in fp64, rounded to fp32.
  const double inv = 1.0 / sqrt(total / double(h) + double(p.eps));
  for (int64_t i = threadIdx.x; i < h; i += blockDim.x) xs[i] = static_cast<float>(x[i] * inv * p.norm_weight[i]);
  __syncthreads();
  for (int64_t e = warp; e < p.num_experts; e += nwarps) {
    const float* w = p.router + e * h;
    float acc = 0;
    for (int64_t i = lane; i < h; i += 32) acc += xs[i] * w[i];
    acc = warp_sum(acc);
    if (lane == 0) logits[e] = acc;
  }
  __syncthreads();
  if (threadIdx.x != 0) return;
  const int64_t ne = p.num_experts, k = p.top_k;
  double mx = logits[0];
  for (int64_t e = 1; e < ne; ++e) mx = fmax(mx, double(logits[e]));
  double z = 0;
  for (int64_t e = 0; e < ne; ++e) z += prob[e] = exp(double(logits[e]) - mx);
  for (int64_t e = 0; e < ne; ++e) prob[e] /= z;
  double chosen_w[kMaxRouteTopK];
  int32_t chosen[kMaxRouteTopK];
  double sum = 0;
  for (int64_t j = 0; j < k; ++j) {
    int64_t best = -1;
    for (int64_t e = 0; e < ne; ++e)  // strictly greater: ties keep the lower id
      if (prob[e] >= 0 && (best < 0 || prob[e] > prob[best])) best = e;
    chosen[j] = static_cast<int32_t>(best);
    sum += chosen_w[j] = prob[best];
    prob[best] = -1.0;  // taken (probabilities are >= 0)
  }
  for (int64_t j = 0; j < k; ++j) {
    p.expert_ids[t * k + j] = chosen[j];
    p.weights[t * k + j] = static_cast<float>(p.normalize ? chosen_w[j] / sum : chosen_w[j]);
  }
}

__global__ void gather_kernel(const uint4* x, int64_t width8, const int32_t* src, uint4* out) {
  const int64_t r = blockIdx.x;
  const uint4* row = x + static_cast<int64_t>(src[r]) * width8;
  for (int64_t i = threadIdx.x; i < width8; i += blockDim.x) out[r * width8 + i] = row[i];
}

__global__ void combine_kernel(const __nv_bfloat16* y, int64_t width, const int32_t* pos, const float* weights,
                               int64_t top_k, float* residual) {
  const int64_t t = blockIdx.x;
  float* dst = residual + t * width;
  for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
    float acc = dst[c];
    for (int64_t j = 0; j < top_k; ++j)
      acc += weights[t * top_k + j] * __bfloat162float(y[static_cast<int64_t>(pos[t * top_k + j]) * width + c]);
    dst[c] = acc;
  }
}

}  // namespace

cudaError_t moe_route(const MoeRouteParams& p, cudaStream_t stream) {
  if (!p.residual || !p.norm_weight || !p.router || !p.expert_ids || !p.weights || p.num_tokens < 0 ||
      p.hidden < 1 || p.hidden > kMaxRouteHidden || p.num_experts < 1 || p.num_experts > kMaxRoutedExperts ||
      p.top_k < 1 || p.top_k > kMaxRouteTopK || p.top_k > p.num_experts)
    return cudaErrorInvalidValue;
  if (p.num_tokens == 0) return cudaSuccess;
  route_kernel<<<static_cast<unsigned>(p.num_tokens), kRouteThreads, static_cast<size_t>(p.hidden) * 4,
                 stream>>>(p);
  return cudaGetLastError();
}

cudaError_t moe_gather_rows(const __nv_bfloat16* x, int64_t width, const int32_t* src, int64_t rows,
                            __nv_bfloat16* out, cudaStream_t stream) {
  if (!x || !src || !out || width < 1 || width % 8 != 0 || rows < 0) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  gather_kernel<<<static_cast<unsigned>(rows), 128, 0, stream>>>(reinterpret_cast<const uint4*>(x), width / 8,
                                                                  src, reinterpret_cast<uint4*>(out));
  return cudaGetLastError();
}

cudaError_t moe_combine(const __nv_bfloat16* y, int64_t width, const int32_t* pos, const float* weights,
                        int64_t tokens, int64_t top_k, float* residual, cudaStream_t stream) {
  if (!y || !pos || !weights || !residual || width < 1 || tokens < 0 || top_k < 1) return cudaErrorInvalidValue;
  if (tokens == 0) return cudaSuccess;
  combine_kernel<<<static_cast<unsigned>(tokens), 256, 0, stream>>>(y, width, pos, weights, top_k, residual);
  return cudaGetLastError();
}

}  // namespace longctx::cuda
