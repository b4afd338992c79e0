#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace longctx::cuda {

// out[r] = index of the largest logit of row r of logits[rows, n] (row stride n, fp32);
// ties go to the lowest index, as torch.argmax and cpu::argmax. NaN never wins (cpu::argmax
// compares with >, so a NaN is skipped unless it is element 0; here NaN is always skipped,
// and an all-NaN row gives 0). One thread block per row. Returns the launch error.
cudaError_t argmax(const float* logits, int64_t rows, int64_t n, int32_t* out, cudaStream_t stream);

// One row's sampling parameters, in device memory (an array of `rows`, plain 32 bytes each).
// Same meaning as cpu::SamplingParams steps 3-4 (penalties and banned tokens are applied to
// the logits before this call): temperature 0 = greedy (argmax, no draw); else
// temperature -> top-k (ties with the k-th logit kept) -> top-p (tokens ranked by logit, ties
// to the lower id) -> min-p, then one draw from the renormalised survivors.
struct SamplingRow {
  float temperature;  // >= 0; 0 = greedy
  int32_t top_k;      // <= 0 or >= n: off
  float top_p;        // (0, 1]; 1 = off
  float min_p;        // [0, 1]; 0 = off
  uint64_t seed;      // the request's stream
  uint64_t offset;    // draw index within the stream (the engine passes the output position)
};
static_assert(sizeof(SamplingRow) == 32);

// Bytes of device scratch sample() needs for logits[rows, n].
size_t sample_workspace_bytes(int64_t rows, int64_t n);

// out_ids[r] = a token drawn for row r of logits[rows, n] (row stride n, fp32) under
// params[r]. The draw's uniform is a counter-based hash of (seed, offset) alone, so a row's
// token does not depend on the other rows of the batch or its position in it, and the same
// (logits, params) always give the same token. NaN logits rank as -inf; -inf and NaN are
// never drawn (a row with no finite logit gives its argmax, as greedy). out_logprob
// (nullable): log-softmax of the raw row (before temperature and filters) at the drawn id,
// as cpu::token_logprobs. workspace: device memory of at least sample_workspace_bytes(rows, n).
// Asynchronous on `stream`; returns the launch error, or cudaErrorInvalidValue for a
// workspace that is too small.
cudaError_t sample(const float* logits, int64_t rows, int64_t n, const SamplingRow* params, int32_t* out_ids,
                   float* out_logprob, void* workspace, size_t workspace_bytes, cudaStream_t stream);

}  // namespace longctx::cuda
