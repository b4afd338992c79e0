// CUDA and cuBLASLt return codes as Status values (errors are values at the model's
// boundary; the kernels below it return codes or throw on bad parameters).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <string>

#include "core/status.h"

namespace longctx::cuda {

inline Status cuda_status(cudaError_t e, const std::string& what) {
  if (e == cudaSuccess) return Status::ok();
  return internal_error(what + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

inline Status cublas_status(cublasStatus_t s, const std::string& what) {
  if (s == CUBLAS_STATUS_SUCCESS) return Status::ok();
  return internal_error(what + ": " + cublasLtGetStatusName(s));
}

}  // namespace longctx::cuda

#define LONGCTX_CUDA_OK(expr, what) LONGCTX_RETURN_IF_ERROR(::longctx::cuda::cuda_status((expr), (what)))
#define LONGCTX_CUBLAS_OK(expr, what) LONGCTX_RETURN_IF_ERROR(::longctx::cuda::cublas_status((expr), (what)))
