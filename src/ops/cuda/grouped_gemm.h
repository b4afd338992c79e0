// The expert GEMMs of a mixture-of-experts layer, grouped over experts: the routed rows
// are sorted by expert (expert e owns rows [row_offsets[e], row_offsets[e+1]) of x), and
// each expert multiplies its rows by its own weight — y[rows_e] = x[rows_e] · W_eᵀ, the
// nn.Linear layout of `linear.h`, bf16 in and out, fp32 accumulation. Two ways to run it,
// both measured (bench/cuda/moe_grouped_bench.cu, docs/cuda.md):
//   kLoopLt         one cuBLASLt matmul per non-empty expert, in order on one stream;
//   kCublasGrouped  one cublasGemmGroupedBatchedEx call over all non-empty experts (one
//                   group each), its pointer arrays filled on the device by a small kernel;
//   kAuto           whichever of the two a cost model says is faster (below).
// Measured on an H100 (docs/cuda.md): the loop costs ~12 µs of host time per expert (a
// cuBLASLt heuristic query and launch), then runs at dense-GEMM speed (~700 TFLOP/s at
// large m); the grouped call costs one launch but its kernels reach only ~240-300 TFLOP/s.
// So many small experts (Qwen3-30B-A3B: 128) want the grouped call — 5x faster than the
// loop at 256 tokens — and few large ones (Mixtral: 8) the loop — 2.5-3x faster than the
// grouped call from 1024 tokens on.
// Empty experts launch nothing. Row counts are host values: the GEMM shapes must be known
// when the work is enqueued (cuBLAS takes them from host arrays).
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "ops/cuda/linear.h"

namespace longctx::cuda {

enum class GroupedGemmMethod { kLoopLt, kCublasGrouped, kAuto };
const char* grouped_gemm_method_name(GroupedGemmMethod m);  // "loop_lt", "cublas_grouped", "auto"

// kAuto's choice for these parameters: the loop when its per-expert host cost (groups ·
// 12 µs) is below the time the grouped kernels lose on the FLOPs (flops · (1/270 − 1/700)
// per TFLOP/s), else the grouped call. Constants from the H100 run in docs/cuda.md.
GroupedGemmMethod choose_grouped_gemm_method(const int64_t* row_offsets, int64_t num_experts, int64_t n,
                                             int64_t k);

// Most experts one grouped call takes (bounds the pointer arrays and the fill kernel's
// parameter block): DeepSeek-V3 has 256 routed experts, Kimi-K2 384.
constexpr int64_t kMaxGroupedExperts = 512;

// Owned by the caller, one per stream (both workspaces are used during a call).
struct GroupedGemmContext {
  BlasContext lt;                   // kLoopLt
  cublasHandle_t handle = nullptr;  // kCublasGrouped (its stream is set on each call)
  // Device memory for kCublasGrouped's A/B/C pointer arrays: grouped_gemm_pointer_bytes().
  void* pointer_arrays = nullptr;
};
constexpr size_t grouped_gemm_pointer_bytes() { return 3 * kMaxGroupedExperts * sizeof(void*); }

struct GroupedLinearParams {
  const __nv_bfloat16* x = nullptr;      // [row_offsets[num_experts], k], row stride k
  const __nv_bfloat16* w = nullptr;      // [num_experts, n, k]: expert e's W at w + e·n·k
  __nv_bfloat16* y = nullptr;            // [row_offsets[num_experts], n], row stride n
  const int64_t* row_offsets = nullptr;  // HOST, num_experts + 1 values, 0 first, non-decreasing
  int64_t num_experts = 0, n = 0, k = 0;
};

// Enqueues the GEMMs on `stream`. CUBLAS_STATUS_INVALID_VALUE for bad parameters (null
// pointers, negative sizes, offsets not starting at 0 or decreasing, more than
// kMaxGroupedExperts experts, a missing handle or pointer workspace for kCublasGrouped);
// otherwise the first failing cuBLAS status, or CUBLAS_STATUS_EXECUTION_FAILED when the
// pointer-fill kernel fails to launch. No rows: no-op.
cublasStatus_t grouped_linear(const GroupedGemmContext& ctx, const GroupedLinearParams& p,
                              GroupedGemmMethod method, cudaStream_t stream);

}  // namespace longctx::cuda
