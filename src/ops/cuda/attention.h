// Merging partial attention states (DESIGN.md §3, FlashInfer's merge_state) on the GPU.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/dtype.h"

namespace longctx::cuda {

// Two partial attentions over disjoint key sets, rows of head_dim (e.g. [num_q ·
// num_q_heads, head_dim]) with one natural-log lse per row:
//   lse = log(e^a + e^b);  out = e^(lse_a − lse)·o_a + e^(lse_b − lse)·o_b   (fp32 math).
// A side with lse = −inf drops out (its o is never read); two −inf sides give zeros and
// −inf, never NaN. o_out may alias o_a or o_b, lse_out lse_a or lse_b. o_dtype is kBF16 or
// kF32 for all three o's. Throws std::invalid_argument for another dtype. Returns the launch error.
cudaError_t merge_attention_states(const void* o_a, const float* lse_a, const void* o_b, const float* lse_b,
                                   void* o_out, float* lse_out, int64_t rows, int64_t head_dim, DType o_dtype,
                                   cudaStream_t stream);

}  // namespace longctx::cuda
