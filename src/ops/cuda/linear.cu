#include "ops/cuda/linear.h"

namespace longctx::cuda {
namespace {

// RAII for the cuBLASLt descriptors of one call (host objects; creating them costs well
// under a microsecond each, so nothing is cached: no hidden state between calls).
struct Descs {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~Descs() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

#define LONGCTX_LT(expr)                        \
  do {                                          \
    const cublasStatus_t s_ = (expr);           \
    if (s_ != CUBLAS_STATUS_SUCCESS) return s_; \
  } while (0)

}  // namespace

// Row-major y[m,n] = x[m,k]·W[n,k]ᵀ is column-major yᵀ[n,m] = W·xᵀ: cuBLASLt's A is W
// (column-major k×n, transposed), B is x (column-major k×m), C = D = y (column-major n×m).
// The bias epilogue adds bias[n] along the rows of that D; accumulate is beta = 1 with C = D.
cublasStatus_t linear(const BlasContext& ctx, const LinearParams& p, cudaStream_t stream) {
  if (p.m < 0 || p.n < 0 || p.k < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (p.y_dtype != DType::kBF16 && p.y_dtype != DType::kF32) return CUBLAS_STATUS_INVALID_VALUE;
  if (p.m == 0 || p.n == 0 || p.k == 0) return CUBLAS_STATUS_SUCCESS;
  const cudaDataType_t yt = p.y_dtype == DType::kBF16 ? CUDA_R_16BF : CUDA_R_32F;
  Descs d;
  LONGCTX_LT(cublasLtMatmulDescCreate(&d.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  LONGCTX_LT(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  LONGCTX_LT(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  if (p.bias) {
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    LONGCTX_LT(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    LONGCTX_LT(
        cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p.bias, sizeof(p.bias)));
  }
  const auto m = static_cast<uint64_t>(p.m), n = static_cast<uint64_t>(p.n), k = static_cast<uint64_t>(p.k);
  LONGCTX_LT(cublasLtMatrixLayoutCreate(&d.a, CUDA_R_16BF, k, n, static_cast<int64_t>(k)));
  LONGCTX_LT(cublasLtMatrixLayoutCreate(&d.b, CUDA_R_16BF, k, m, static_cast<int64_t>(k)));
  LONGCTX_LT(cublasLtMatrixLayoutCreate(&d.c, yt, n, m, static_cast<int64_t>(n)));
  LONGCTX_LT(cublasLtMatmulPreferenceCreate(&d.pref));
  const size_t ws = ctx.workspace ? ctx.workspace_bytes : 0;
  LONGCTX_LT(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                  sizeof(ws)));
  cublasLtMatmulHeuristicResult_t heur{};
  int found = 0;
  LONGCTX_LT(cublasLtMatmulAlgoGetHeuristic(ctx.handle, d.op, d.a, d.b, d.c, d.c, d.pref, 1, &heur, &found));
  if (found == 0) return CUBLAS_STATUS_NOT_SUPPORTED;
  const float alpha = 1.0f, beta = p.accumulate ? 1.0f : 0.0f;
  return cublasLtMatmul(ctx.handle, d.op, &alpha, p.w, d.a, p.x, d.b, &beta, p.y, d.c, p.y, d.c, &heur.algo,
                        ctx.workspace, ws, stream);
}

}  // namespace longctx::cuda
