#include <vector>

#include "ops/cuda/grouped_gemm.h"

namespace longctx::cuda {
namespace {

// The non-empty experts of one call, passed by value to the pointer-fill kernel (a
// kernel's parameters are copied at launch, so nothing host-side must outlive the call
// and no host→device copy races with the next call's writes). 4 KiB: under the 32 KiB
// parameter limit of CUDA 12.1+ on sm_70 and newer.
struct GroupTable {
  int32_t expert[kMaxGroupedExperts];
  int32_t first_row[kMaxGroupedExperts];
};

// Column-major view of the row-major y = x·Wᵀ (see linear.cu): per group, A = W_e, B = x
// rows, C = y rows.
__global__ void fill_pointers(GroupTable table, int32_t groups, const __nv_bfloat16* x,
                              const __nv_bfloat16* w, __nv_bfloat16* y, int64_t n, int64_t k, const void** a,
                              const void** b, void** c) {
  const int32_t g = static_cast<int32_t>(blockIdx.x * blockDim.x + threadIdx.x);
  if (g >= groups) return;
  a[g] = w + static_cast<int64_t>(table.expert[g]) * n * k;
  b[g] = x + static_cast<int64_t>(table.first_row[g]) * k;
  c[g] = y + static_cast<int64_t>(table.first_row[g]) * n;
}

bool valid(const GroupedLinearParams& p) {
  if (!p.row_offsets || p.num_experts < 0 || p.num_experts > kMaxGroupedExperts || p.n < 0 || p.k < 0)
    return false;
  if (p.row_offsets[0] != 0) return false;
  for (int64_t e = 0; e < p.num_experts; ++e)
    if (p.row_offsets[e + 1] < p.row_offsets[e]) return false;
  // int32 rows and leading dimensions: what cublasGemmGroupedBatchedEx takes.
  if (p.row_offsets[p.num_experts] > INT32_MAX || p.n > INT32_MAX || p.k > INT32_MAX) return false;
  const bool empty = p.row_offsets[p.num_experts] == 0 || p.n == 0 || p.k == 0;
  return empty || (p.x && p.w && p.y);
}

cublasStatus_t loop_lt(const GroupedGemmContext& ctx, const GroupedLinearParams& p, cudaStream_t stream) {
  for (int64_t e = 0; e < p.num_experts; ++e) {
    const int64_t first = p.row_offsets[e], m = p.row_offsets[e + 1] - first;
    if (m == 0) continue;
    LinearParams lp;
    lp.x = p.x + first * p.k;
    lp.w = p.w + e * p.n * p.k;
    lp.y = p.y + first * p.n;
    lp.m = m;
    lp.n = p.n;
    lp.k = p.k;
    const cublasStatus_t s = linear(ctx.lt, lp, stream);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
  }
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublas_grouped(const GroupedGemmContext& ctx, const GroupedLinearParams& p,
                              cudaStream_t stream) {
  if (!ctx.handle || !ctx.pointer_arrays) return CUBLAS_STATUS_INVALID_VALUE;
  GroupTable table{};
  std::vector<int> m, n, k, lda, ldb, ldc, size;
  int32_t groups = 0;
  for (int64_t e = 0; e < p.num_experts; ++e) {
    const int64_t rows = p.row_offsets[e + 1] - p.row_offsets[e];
    if (rows == 0) continue;
    table.expert[groups] = static_cast<int32_t>(e);
    table.first_row[groups] = static_cast<int32_t>(p.row_offsets[e]);
    ++groups;
    m.push_back(static_cast<int>(p.n));  // column-major: yᵀ[n, rows] = W_e · xᵀ
    n.push_back(static_cast<int>(rows));
    k.push_back(static_cast<int>(p.k));
    lda.push_back(static_cast<int>(p.k));
    ldb.push_back(static_cast<int>(p.k));
    ldc.push_back(static_cast<int>(p.n));
    size.push_back(1);
  }
  if (groups == 0) return CUBLAS_STATUS_SUCCESS;
  auto** a = static_cast<const void**>(ctx.pointer_arrays);
  const void** b = a + kMaxGroupedExperts;
  void** c = const_cast<void**>(b + kMaxGroupedExperts);
  fill_pointers<<<(groups + 127) / 128, 128, 0, stream>>>(table, groups, p.x, p.w, p.y, p.n, p.k, a, b, c);
  if (cudaGetLastError() != cudaSuccess) return CUBLAS_STATUS_EXECUTION_FAILED;
  const std::vector<cublasOperation_t> ta(static_cast<size_t>(groups), CUBLAS_OP_T);
  const std::vector<cublasOperation_t> tb(static_cast<size_t>(groups), CUBLAS_OP_N);
  const std::vector<float> alpha(static_cast<size_t>(groups), 1.0f), beta(static_cast<size_t>(groups), 0.0f);
  cublasStatus_t s = cublasSetStream(ctx.handle, stream);
  if (s != CUBLAS_STATUS_SUCCESS) return s;
  s = cublasSetPointerMode(ctx.handle, CUBLAS_POINTER_MODE_HOST);
  if (s != CUBLAS_STATUS_SUCCESS) return s;
  return cublasGemmGroupedBatchedEx(ctx.handle, ta.data(), tb.data(), m.data(), n.data(), k.data(),
                                    alpha.data(), a, CUDA_R_16BF, lda.data(), b, CUDA_R_16BF, ldb.data(),
                                    beta.data(), c, CUDA_R_16BF, ldc.data(), groups, size.data(),
                                    CUBLAS_COMPUTE_32F);
}

}  // namespace

const char* grouped_gemm_method_name(GroupedGemmMethod m) {
  switch (m) {
    case GroupedGemmMethod::kLoopLt: return "loop_lt";
    case GroupedGemmMethod::kCublasGrouped: return "cublas_grouped";
    case GroupedGemmMethod::kAuto: return "auto";
  }
  return "?";
}

GroupedGemmMethod choose_grouped_gemm_method(const int64_t* row_offsets, int64_t num_experts, int64_t n,
                                             int64_t k) {
  constexpr double kLoopHostSecondsPerGemm = 12e-6;
  constexpr double kLoopFlops = 700e12, kGroupedFlops = 270e12;
  int64_t groups = 0;
  for (int64_t e = 0; e < num_experts; ++e) groups += row_offsets[e + 1] > row_offsets[e] ? 1 : 0;
  const double flops =
      2.0 * static_cast<double>(row_offsets[num_experts]) * static_cast<double>(n) * static_cast<double>(k);
  const double loop_extra = static_cast<double>(groups) * kLoopHostSecondsPerGemm;
  const double grouped_extra = flops * (1.0 / kGroupedFlops - 1.0 / kLoopFlops);
  return loop_extra < grouped_extra ? GroupedGemmMethod::kLoopLt : GroupedGemmMethod::kCublasGrouped;
}

cublasStatus_t grouped_linear(const GroupedGemmContext& ctx, const GroupedLinearParams& p,
                              GroupedGemmMethod method, cudaStream_t stream) {
  if (!valid(p)) return CUBLAS_STATUS_INVALID_VALUE;
  if (p.row_offsets[p.num_experts] == 0 || p.n == 0 || p.k == 0) return CUBLAS_STATUS_SUCCESS;
  if (method == GroupedGemmMethod::kAuto)
    method = choose_grouped_gemm_method(p.row_offsets, p.num_experts, p.n, p.k);
  return method == GroupedGemmMethod::kLoopLt ? loop_lt(ctx, p, stream) : cublas_grouped(ctx, p, stream);
}

}  // namespace longctx::cuda
