// y[M,N] = x[M,K] · W[N,K]ᵀ (+ bias[N]) (+ y) on the GPU through cuBLASLt — the Hugging
// Face nn.Linear layout, as cpu::linear. x and W are bf16, the accumulation is fp32 (cuBLAS
// compute type 32F), y is bf16 (activations) or fp32 (logits, residual in fp32).
#pragma once

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace longctx::cuda {

// What a GEMM needs besides its operands; owned by the caller (one per stream: cuBLASLt
// may use the whole workspace during a call, so two streams must not share one).
struct BlasContext {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;   // device memory, 256-byte aligned (cudaMalloc is)
  size_t workspace_bytes = 0;  // 32 MiB is what cuBLAS itself reserves on Hopper
};

struct LinearParams {
  const __nv_bfloat16* x = nullptr;  // [m, k], row stride k
  const __nv_bfloat16* w = nullptr;  // [n, k], row-major
  // [n] in y_dtype (cuBLASLt's default bias type is the output type), or null.
  const void* bias = nullptr;
  void* y = nullptr;             // [m, n], row stride n, y_dtype
  DType y_dtype = DType::kBF16;  // kBF16 or kF32
  int64_t m = 0, n = 0, k = 0;
  bool accumulate = false;  // y += x·Wᵀ (+bias) instead of y = x·Wᵀ (+bias)
};

// Enqueues the GEMM on `stream`. Returns CUBLAS_STATUS_SUCCESS, or the first failing
// cuBLASLt status (CUBLAS_STATUS_NOT_SUPPORTED when the heuristic finds no algorithm,
// CUBLAS_STATUS_INVALID_VALUE for a bad y_dtype or negative sizes). m, n or k == 0: no-op
// (with k == 0 and !accumulate y is NOT zeroed: there is nothing to multiply).
cublasStatus_t linear(const BlasContext& ctx, const LinearParams& p, cudaStream_t stream);

}  // namespace longctx::cuda
