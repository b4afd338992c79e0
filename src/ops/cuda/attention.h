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

// n partial states of the same rows — one per rank of a DCP, KVP or CP group, each attention
// over its own keys — merged in state order (the same bits wherever it runs on the same
// inputs), in fp32 from fp32 states; the output is rounded once, to out_dtype:
//   lse = log Σ_j e^(lse_j);  out = Σ_j e^(lse_j − lse) · o_j.
// A state with lse = −inf drops out unread; a row whose states are all −inf gives zeros and
// −inf, never NaN. out may alias a state's o when out_dtype is kF32 (same rows).
struct MergeStatesParams {
  const float* o = nullptr;      // state j: [rows, head_dim] at o + j · o_state_stride
  int64_t o_state_stride = 0;    // floats
  const float* lse = nullptr;    // state j: [rows] at lse + j · lse_state_stride
  int64_t lse_state_stride = 0;  // floats
  int64_t num_states = 0, rows = 0, head_dim = 0;
  void* out = nullptr;             // [rows, head_dim] contiguous
  DType out_dtype = DType::kBF16;  // kBF16 or kF32
  float* lse_out = nullptr;        // [rows], may be null
};

// Throws std::invalid_argument for another out_dtype or num_states < 1. Returns the launch error.
cudaError_t merge_attention_states(const MergeStatesParams& p, cudaStream_t stream);

}  // namespace longctx::cuda
