#include "ops/cuda/common.cuh"
#include "ops/cuda/embedding.h"

namespace longctx::cuda {
namespace {

using detail::Bf16x8;

// grid.x = tokens; each thread copies `kVec ? 8 : 1` elements per step.
template <bool kVec>
__global__ void embedding_kernel(const int32_t* ids, const __nv_bfloat16* table, int64_t vocab, int64_t dim,
                                 __nv_bfloat16* out) {
  const int64_t t = blockIdx.x;
  const int64_t id = ids[t];
  const bool ok = id >= 0 && id < vocab;
  const int64_t w = kVec ? dim / 8 : dim;
  for (int64_t i = threadIdx.x; i < w; i += blockDim.x) {
    if constexpr (kVec) {
      Bf16x8 v{};
      if (ok) v = reinterpret_cast<const Bf16x8*>(table + id * dim)[i];
      reinterpret_cast<Bf16x8*>(out + t * dim)[i] = v;
    } else {
      out[t * dim + i] = ok ? table[id * dim + i] : __float2bfloat16(0.0f);
    }
  }
}

__global__ void embedding_f32_kernel(const int32_t* ids, const __nv_bfloat16* table, int64_t vocab,
                                     int64_t dim, float* out) {
  const int64_t t = blockIdx.x;
  const int64_t id = ids[t];
  const bool ok = id >= 0 && id < vocab;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x)
    out[t * dim + i] = ok ? __bfloat162float(table[id * dim + i]) : 0.0f;
}

}  // namespace

cudaError_t embedding_f32(const int32_t* ids, int64_t num_tokens, const __nv_bfloat16* table, int64_t vocab,
                          int64_t dim, float* out, cudaStream_t stream) {
  if (num_tokens <= 0 || dim <= 0) return cudaSuccess;
  embedding_f32_kernel<<<static_cast<unsigned>(num_tokens), 256, 0, stream>>>(ids, table, vocab, dim, out);
  return cudaGetLastError();
}

cudaError_t embedding(const int32_t* ids, int64_t num_tokens, const __nv_bfloat16* table, int64_t vocab,
                      int64_t dim, __nv_bfloat16* out, cudaStream_t stream) {
  if (num_tokens <= 0 || dim <= 0) return cudaSuccess;
  const bool vec = dim % 8 == 0 && detail::aligned16(table) && detail::aligned16(out);
  if (vec)
    embedding_kernel<true>
        <<<static_cast<unsigned>(num_tokens), 128, 0, stream>>>(ids, table, vocab, dim, out);
  else
    embedding_kernel<false>
        <<<static_cast<unsigned>(num_tokens), 128, 0, stream>>>(ids, table, vocab, dim, out);
  return cudaGetLastError();
}

}  // namespace longctx::cuda
