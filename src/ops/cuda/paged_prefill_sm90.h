// Hopper (sm_90a) prefill attention over the paged bf16 KV cache: the same function as
// paged_attention's prefill shape (PagedAttentionParams semantics, LSE included), on wgmma.
// paged_attention() calls it for head_dim-128 prefill on compute capability 9.0 (details at
// paged_prefill_sm90_eligible); everything else stays on the portable kernel.
// Internal to ops/cuda (not part of the API). Design and measurements: docs/cuda.md,
// docs/cuda_prefill_notes.md.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "ops/cuda/paged_attention.h"

namespace longctx::cuda {

// True when paged_attention() should run this call on the Hopper kernel: prefill shape
// (max_num_q > 1), head_dim 128, block_size a multiple of 16 (whole tiles by TMA), compute
// capability 9.0, a grid within limits, the environment variable LONGCTX_ATTN_SM90 not "0"
// (the switch benchmarks and tests use to run the portable kernel on the same device), and,
// when the portable kernel's plan would split the keys (`portable_splits`), a grid of at
// least two waves (this kernel does not split).
bool paged_prefill_sm90_eligible(const PagedAttentionParams& p, bool portable_splits = false);

// Enqueues the attention without a key split. Expects validated parameters, head_dim 128 and
// a compute capability 9.0 device; runs any block size (tiles by cp.async where TMA cannot
// take them; LONGCTX_ATTN_SM90_TMA=0 forces that). Returns the launch error.
cudaError_t paged_prefill_sm90(const PagedAttentionParams& p, int64_t total_q, cudaStream_t stream);

}  // namespace longctx::cuda
