#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace longctx::cuda {

// out[t, :] = table[ids[t], :] (bf16 gather). An id outside [0, vocab) gives a row of
// zeros instead of a wild read (callers validate ids; this only keeps a bad one from
// faulting the device). Returns the launch error.
cudaError_t embedding(const int32_t* ids, int64_t num_tokens, const __nv_bfloat16* table, int64_t vocab,
                      int64_t dim, __nv_bfloat16* out, cudaStream_t stream);

// The same gather into fp32 rows (the start of an fp32 residual stream).
cudaError_t embedding_f32(const int32_t* ids, int64_t num_tokens, const __nv_bfloat16* table, int64_t vocab,
                          int64_t dim, float* out, cudaStream_t stream);

}  // namespace longctx::cuda
