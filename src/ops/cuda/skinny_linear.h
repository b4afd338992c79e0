// y[m,n] = x[m,k]·W[n,k]ᵀ (+ bias[n]) (+ y) for few rows (m ≤ 8): decode steps, where the
// GEMM is a pass over the weights and nothing else. Each weight row is streamed once with
// 16-byte loads, several in flight per lane, and each W chunk is used for all m rows of x.
// Measured (H100, Llama-3.1-8B decode step, bench/RESULTS.md): at m = 1 it beats cuBLASLt
// (TPOT 6.33 vs 6.86 ms); at m = 8 it loses badly (17.4 vs 7.0 ms: 8 x loads per W chunk
// make it load-issue bound), so the model uses it for m = 1 only.
// Same semantics and dtypes as cuda::linear (bf16 x/W, fp32 accumulation, bf16 or fp32 y,
// bias in y's dtype); each output is a function of its own row and column only, so the result
// of a row does not depend on m.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/dtype.h"

namespace longctx::cuda {

inline constexpr int64_t kSkinnyMaxRows = 8;

struct SkinnyLinearParams {
  const __nv_bfloat16* x = nullptr;  // [m, k], row stride k
  const __nv_bfloat16* w = nullptr;  // [n, k]
  const void* bias = nullptr;        // [n] in y_dtype, or null
  void* y = nullptr;                 // [m, n], y_dtype
  DType y_dtype = DType::kBF16;      // kBF16 or kF32
  int64_t m = 0, n = 0, k = 0;
  bool accumulate = false;
};

// Throws std::invalid_argument when m > kSkinnyMaxRows, k % 8 != 0, x/W are not 16-byte
// aligned, or y_dtype is not bf16/fp32. m, n or k == 0: no-op. Returns the launch error.
cudaError_t skinny_linear(const SkinnyLinearParams& p, cudaStream_t stream);

}  // namespace longctx::cuda
