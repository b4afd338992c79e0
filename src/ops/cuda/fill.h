// Device-side initialisation of large tensors (random-weight benchmark models are made on
// the GPU: 16 GB of Llama-3.1-8B never crosses PCIe or sits in host memory).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace longctx::cuda {

// x[i] = bf16(uniform in [-bound, bound)), a counter-based hash of (seed, i): the same
// seed gives the same tensor on any grid. Returns the launch error.
cudaError_t fill_uniform_bf16(__nv_bfloat16* x, int64_t n, uint64_t seed, float bound, cudaStream_t stream);

// x[i] = value.
cudaError_t fill_f32(float* x, int64_t n, float value, cudaStream_t stream);

}  // namespace longctx::cuda
