#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace longctx::cuda {

// out[r, j] = bf16(silu(gate[r, j]) · up[r, j]) in fp32; gate/up rows have stride
// `in_stride` (a fused [gate | up] projection output is read in place), out rows `n`.
// Returns the launch error.
cudaError_t silu_mul(const __nv_bfloat16* gate, const __nv_bfloat16* up, __nv_bfloat16* out, int64_t rows,
                     int64_t n, int64_t in_stride, cudaStream_t stream);

}  // namespace longctx::cuda
