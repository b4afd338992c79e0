#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace longctx::cuda {

// out[r] = index of the largest logit of row r of logits[rows, n] (row stride n, fp32);
// ties go to the lowest index, as torch.argmax and cpu::argmax. NaN never wins (cpu::argmax
// compares with >, so a NaN is skipped unless it is element 0; here NaN is always skipped,
// and an all-NaN row gives 0). One thread block per row. Returns the launch error.
cudaError_t argmax(const float* logits, int64_t rows, int64_t n, int32_t* out, cudaStream_t stream);

}  // namespace longctx::cuda
