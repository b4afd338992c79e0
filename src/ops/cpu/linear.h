// y[M,N] = x[M,K] · W[N,K]ᵀ (+ bias[N]) — the Hugging Face nn.Linear layout.
// x and y are fp32; W may be fp32 (straight OpenBLAS sgemm) or bf16/fp16 (converted to
// fp32 in row panels into scratch, then sgemm: fp32 accumulation either way). m ≤
// kLinearSmallM with bf16/fp16 W streams W once instead (below).
// Speed rests on OpenBLAS picking the right kernel: 0.3.21 does not know Sapphire/
// Emerald Rapids (family 6, models 143/207) and falls back to "Prescott" (SSE3), 3-5x
// slower; run with OPENBLAS_CORETYPE=SkylakeX there (openblas_get_corename() tells).
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace longctx::cpu {

// Up to this many rows of x, half-precision W takes the streaming path: one pass over W,
// dotted with every x row in register tiles (memory bound on W for a few rows, FMA bound
// towards the limit). Above it W is widened to fp32 panel by panel and sgemm runs — a
// cost per call of the size of W, whatever m is. The limit is where the two cost about
// the same on the Qwen3-0.6B shapes, one core of this project's AVX-512 dev machine:
// beyond 64 rows with AVX-512 (32 kept), ~16-24 with AVX2 (bench/RESULTS.md "CPU
// linear"). Rows up to the limit are batch-invariant: a row's result does not depend on
// how many rows share the call. The step-time calibration prices the switch
// (perf/hardware.h, StepCalibration::small_m).
#if defined(__AVX512F__)
inline constexpr int64_t kLinearSmallM = 32;
#else
inline constexpr int64_t kLinearSmallM = 16;
#endif

struct LinearParams {
  const float* x = nullptr;  // [m, k], row stride k
  const void* w = nullptr;   // [n, k] in w_dtype, row-major
  DType w_dtype = DType::kF32;
  const float* bias = nullptr;  // [n] or null
  float* y = nullptr;           // [m, n], row stride n
  int64_t m = 0, n = 0, k = 0;
  bool accumulate = false;  // y += x·Wᵀ instead of y = x·Wᵀ (residual fused into the GEMM)
};

void linear(const LinearParams& p);

// Plain row-major sgemm C[m,n] = A[m,k]·B[n,k]ᵀ — the peer the benchmark compares against.
void sgemm_nt(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k);

}  // namespace longctx::cpu
