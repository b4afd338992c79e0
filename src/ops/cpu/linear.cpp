#include "ops/cpu/linear.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "ops/cpu/convert_row.h"

namespace longctx::cpu {
namespace {

constexpr int64_t kSmallM = kLinearSmallM;
// A converted fp32 panel of W is at most this many bytes, so it stays in the 2 MiB L2 of
// the CI cores while sgemm streams x against it.
constexpr int64_t kPanelBytes = int64_t{1} << 20;
constexpr int64_t kMinPanelRows = 64;
// Chunk of one W row converted at a time in the small-m path (lives on the stack).
constexpr int64_t kRowChunk = 512;
constexpr int kLanes = 16;  // independent partial sums: lets the dot product vectorise

void add_bias(float* y, const float* bias, int64_t m, int64_t n) {
#pragma omp parallel for schedule(static) if (m * n > 16384)
  for (int64_t r = 0; r < m; ++r) {
    float* row = y + r * n;
    for (int64_t j = 0; j < n; ++j) row[j] += bias[j];
  }
}

// Σ a[i]·b[i] with kLanes independent partial sums held in one register-sized local
// array, so the loop vectorises without reassociating a single float sum.
float dot(const float* a, const float* b, int64_t n) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += a[i + l] * b[i + l];
  float s = 0.0f;
  for (; i < n; ++i) s += a[i] * b[i];
  for (int l = 0; l < kLanes; ++l) s += acc[l];
  return s;
}

// y[r, j] (+)= Σ_c x[r, c] · W[j, c] for m ≤ kSmallM: each W row is read once (converted
// chunk by chunk into a stack buffer in L1) and dotted with every x row; OpenMP over W rows.
void linear_small_m(const LinearParams& p) {
  const size_t esize = dtype_size(p.w_dtype);
  const char* w = static_cast<const char*>(p.w);
#pragma omp parallel for schedule(static) if (p.n * p.k > 65536)
  for (int64_t j = 0; j < p.n; ++j) {
    float acc[kSmallM] = {};
    float buf[kRowChunk];
    const char* wrow = w + static_cast<size_t>(j * p.k) * esize;
    for (int64_t c0 = 0; c0 < p.k; c0 += kRowChunk) {
      const int64_t len = std::min(kRowChunk, p.k - c0);
      detail::widen_to_f32(wrow + static_cast<size_t>(c0) * esize, p.w_dtype, buf, len);
      for (int64_t r = 0; r < p.m; ++r) acc[r] += dot(p.x + r * p.k + c0, buf, len);
    }
    for (int64_t r = 0; r < p.m; ++r) {
      const float s = p.bias ? acc[r] + p.bias[j] : acc[r];
      float& out = p.y[r * p.n + j];
      out = p.accumulate ? out + s : s;
    }
  }
}

// Half-precision W, m > kSmallM: each thread takes a panel of W rows, converts it to
// fp32 in its own scratch and runs a single-threaded sgemm of x against it into the
// matching columns of y (ldc = n). Threads never wait on each other between the
// conversion and the GEMM, and OpenBLAS (called inside our OpenMP region) stays on one
// thread, so there is no nested or alternating thread pool.
void linear_panels(const LinearParams& p) {
  const size_t esize = dtype_size(p.w_dtype);
  const int64_t threads = omp_get_max_threads();
  // Enough panels to give every thread work, each at most kPanelBytes.
  const int64_t cap_rows = std::max(kMinPanelRows, kPanelBytes / (p.k * int64_t{sizeof(float)}));
  const int64_t per_thread = (p.n + threads - 1) / threads;
  const int64_t panel_rows = std::min(cap_rows, std::max<int64_t>(16, (per_thread + 15) / 16 * 16));
  const int64_t panels = (p.n + panel_rows - 1) / panel_rows;
  const char* w = static_cast<const char*>(p.w);
  const float beta = p.accumulate ? 1.0f : 0.0f;
#pragma omp parallel for schedule(dynamic, 1) if (panels > 1)
  for (int64_t pi = 0; pi < panels; ++pi) {
    const int64_t j0 = pi * panel_rows;
    const int64_t rows = std::min(panel_rows, p.n - j0);
    // thread_local, not per call: a fresh MiB-sized buffer would be mmap'd and page-
    // faulted on every call (every layer, every step); OpenMP workers persist, so each
    // keeps its buffer. Per thread, so concurrent callers (CPU ranks as threads) are safe.
    thread_local std::vector<float> scratch;
    if (scratch.size() < static_cast<size_t>(rows * p.k))
      scratch.resize(static_cast<size_t>(panel_rows * p.k));
    float* panel = scratch.data();
    for (int64_t j = 0; j < rows; ++j)
      detail::widen_to_f32(w + static_cast<size_t>((j0 + j) * p.k) * esize, p.w_dtype, panel + j * p.k, p.k);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(p.m), static_cast<int>(rows),
                static_cast<int>(p.k), 1.0f, p.x, static_cast<int>(p.k), panel, static_cast<int>(p.k), beta,
                p.y + j0, static_cast<int>(p.n));
  }
  if (p.bias) add_bias(p.y, p.bias, p.m, p.n);
}

}  // namespace

void linear(const LinearParams& p) {
  if (p.m <= 0 || p.n <= 0) return;
  if (p.k <= 0) {  // empty reduction: y = (y) + bias
    for (int64_t r = 0; r < p.m; ++r)
      for (int64_t j = 0; j < p.n; ++j) {
        float& out = p.y[r * p.n + j];
        out = (p.accumulate ? out : 0.0f) + (p.bias ? p.bias[j] : 0.0f);
      }
    return;
  }
  if (p.w_dtype == DType::kF32) {
    const float* w = static_cast<const float*>(p.w);
    const float beta = p.accumulate ? 1.0f : 0.0f;
    if (p.m == 1) {
      // beta = 0 must not read y (it may hold garbage, even NaN): zero it explicitly.
      if (!p.accumulate) std::fill(p.y, p.y + p.n, 0.0f);
      cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(p.n), static_cast<int>(p.k), 1.0f, w,
                  static_cast<int>(p.k), p.x, 1, 1.0f, p.y, 1);
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(p.m), static_cast<int>(p.n),
                  static_cast<int>(p.k), 1.0f, p.x, static_cast<int>(p.k), w, static_cast<int>(p.k), beta,
                  p.y, static_cast<int>(p.n));
    }
    if (p.bias) add_bias(p.y, p.bias, p.m, p.n);
    return;
  }
  if (p.m <= kSmallM) {
    linear_small_m(p);
  } else {
    linear_panels(p);
  }
}

void sgemm_nt(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), 1.0f, a, static_cast<int>(k), b, static_cast<int>(k), 0.0f, c,
              static_cast<int>(n));
}

}  // namespace longctx::cpu
