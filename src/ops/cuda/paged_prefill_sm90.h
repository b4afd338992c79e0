// Hopper (sm_90a) prefill attention over the paged bf16 KV cache: the same function as
// paged_attention's prefill shape (PagedAttentionParams semantics, LSE included), on wgmma.
// paged_attention() calls it for head_dim 128 prefill launches that do not split the keys,
// when the device is compute capability 9.0; everything else stays on the portable kernel.
// Internal to ops/cuda (not part of the API). Design and measurements: docs/cuda.md,
// docs/cuda_prefill_notes.md.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "ops/cuda/paged_attention.h"

namespace longctx::cuda {

// True when the Hopper kernel can run this call on the current device: prefill shape
// (max_num_q > 1), head_dim 128, compute capability 9.0, a grid within limits, and the
// environment variable LONGCTX_ATTN_SM90 not "0" (the switch benchmarks and tests use to
// run the portable kernel on the same device).
bool paged_prefill_sm90_eligible(const PagedAttentionParams& p);

// Enqueues the attention (no key split: the caller checked that its plan has none).
// Expects validated parameters and eligibility. Returns the launch error.
cudaError_t paged_prefill_sm90(const PagedAttentionParams& p, int64_t total_q, cudaStream_t stream);

}  // namespace longctx::cuda
