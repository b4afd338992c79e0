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

void add_bias(float* y, const float* bias, int64_t m, int64_t n) {
#pragma omp parallel for schedule(static) if (m * n > 16384)
  for (int64_t r = 0; r < m; ++r) {
    float* row = y + r * n;
    for (int64_t j = 0; j < n; ++j) row[j] += bias[j];
  }
}

// The small-m path's register tile: kVecLanes fp32 lanes per vector (the widest the build's
// ISA has: the compiler lowers GCC vector extensions to AVX-512, AVX2 or SSE), up to
// kRowGroup rows of x against kWRows rows of W per pass. The tile's J·R accumulators, J W
// vectors and one x vector fit the register file: 32 vector registers with AVX-512, 16
// otherwise; a vector is one register (zmm, ymm with AVX, xmm with SSE only).
#if defined(__AVX512F__)
constexpr int kVecLanes = 16;
constexpr int kRowGroup = 8;
constexpr int kWRows = 3;
#elif defined(__AVX__)
constexpr int kVecLanes = 8;
constexpr int kRowGroup = 4;
constexpr int kWRows = 2;
#else
constexpr int kVecLanes = 4;
constexpr int kRowGroup = 4;
constexpr int kWRows = 2;
#endif
using VecF = float __attribute__((vector_size(kVecLanes * sizeof(float))));
using VecU16 = uint16_t __attribute__((vector_size(kVecLanes * sizeof(uint16_t))));
using VecU32 = uint32_t __attribute__((vector_size(kVecLanes * sizeof(uint32_t))));

// Unaligned vector loads of W as fp32: from fp32, or from bf16 widened in registers (a
// bf16 is the high half of the fp32 with the same value, so the two give the same bits).
inline VecF load_w(const float* p) {
  VecF v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
inline VecF load_w(const uint16_t* p) {
  VecU16 h;
  __builtin_memcpy(&h, p, sizeof h);
  const VecU32 u = __builtin_convertvector(h, VecU32) << 16;
  VecF v;
  __builtin_memcpy(&v, &u, sizeof v);
  return v;
}
inline float w_at(const float* p, int64_t i) { return p[i]; }
inline float w_at(const uint16_t* p, int64_t i) { return bf16_to_f32(p[i]); }

// Σ of the lanes in a fixed pairwise order (halves added until one lane is left): a few
// vector adds instead of a chain of kVecLanes dependent scalar adds, which cost as much
// as the FMAs themselves when k is short (the tiny model's hidden size of 128: its LM head
// ran 15% slower than the chunked loop before this, through an array-based reduction).
inline float reduce_lanes(VecF v) {
  // The same sums as a[l] += a[l + width] over an array, on vectors of half the width.
  using V8 = float __attribute__((vector_size(8 * sizeof(float))));
  using V4 = float __attribute__((vector_size(4 * sizeof(float))));
  V4 q;
  if constexpr (kVecLanes == 16) {
    V8 lo, hi;
    __builtin_memcpy(&lo, &v, sizeof lo);
    __builtin_memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof lo, sizeof hi);
    const V8 h = lo + hi;
    V4 a, b;
    __builtin_memcpy(&a, &h, sizeof a);
    __builtin_memcpy(&b, reinterpret_cast<const char*>(&h) + sizeof a, sizeof b);
    q = a + b;
  } else if constexpr (kVecLanes == 8) {
    V4 a, b;
    __builtin_memcpy(&a, &v, sizeof a);
    __builtin_memcpy(&b, reinterpret_cast<const char*>(&v) + sizeof a, sizeof b);
    q = a + b;
  } else {
    __builtin_memcpy(&q, &v, sizeof q);
  }
  const float p0 = q[0] + q[2], p1 = q[1] + q[3];
  return p0 + p1;
}

// out[j][r] = Σ_i x[r][i]·w[j][i] for R rows of x (row stride ldx) and J rows of W (fp32 or
// bf16). Every (r, j) sum is formed the same way whatever R and J are — kVecLanes partial
// sums over whole vectors, then the tail in order, plus the lanes reduced pairwise — so a
// row's result does not depend on how many rows share the call (batch-invariant up to
// kSmallM rows). Each W vector loaded serves R rows, each x vector J rows of W.
template <int R, int J, typename T>
void dot_tile(const float* x, int64_t ldx, const T* const* w, int64_t k, float (*out)[kRowGroup]) {
  VecF acc[J][R] = {};
  int64_t i = 0;
  for (; i + kVecLanes <= k; i += kVecLanes) {
    VecF wv[J];
    for (int j = 0; j < J; ++j) wv[j] = load_w(w[j] + i);
    for (int r = 0; r < R; ++r) {
      VecF xv = load_w(x + r * ldx + i);
#if defined(__x86_64__)
      // Keeps xv in a register: otherwise GCC folds the load into each of the J FMAs,
      // loading it J times, and the loads (not the FMAs) bound the loop.
      asm("" : "+v"(xv));
#endif
      for (int j = 0; j < J; ++j) acc[j][r] += xv * wv[j];
    }
  }
  for (int j = 0; j < J; ++j)
    for (int r = 0; r < R; ++r) {
      float s = 0.0f;
      for (int64_t t = i; t < k; ++t) s += x[r * ldx + t] * w_at(w[j], t);
      out[j][r] = s + reduce_lanes(acc[j][r]);
    }
}

// Dispatches a runtime row count (1..kRowGroup) to its tile.
template <int J, typename T>
void dot_rows(const float* x, int64_t ldx, int rows, const T* const* w, int64_t k, float (*out)[kRowGroup]) {
  static_assert(kRowGroup == 4 || kRowGroup == 8, "dot_rows dispatches 1..kRowGroup rows");
  switch (rows) {
    case 1: return dot_tile<1, J>(x, ldx, w, k, out);
    case 2: return dot_tile<2, J>(x, ldx, w, k, out);
    case 3: return dot_tile<3, J>(x, ldx, w, k, out);
    case 4: return dot_tile<4, J>(x, ldx, w, k, out);
    default: break;
  }
  if constexpr (kRowGroup == 8) {
    switch (rows) {
      case 5: return dot_tile<5, J>(x, ldx, w, k, out);
      case 6: return dot_tile<6, J>(x, ldx, w, k, out);
      case 7: return dot_tile<7, J>(x, ldx, w, k, out);
      default: return dot_tile<8, J>(x, ldx, w, k, out);
    }
  }
}

// y rows r0.. of the W rows j0..j0+nj (in `rows`: fp32 or bf16), every x row in groups of
// kRowGroup.
template <typename T>
void small_m_rows(const LinearParams& p, const T* const* rows, int64_t j0, int nj) {
  for (int64_t r0 = 0; r0 < p.m; r0 += kRowGroup) {
    const int nr = static_cast<int>(std::min<int64_t>(kRowGroup, p.m - r0));
    float out[kWRows][kRowGroup];
    if (nj == kWRows) {
      dot_rows<kWRows>(p.x + r0 * p.k, p.k, nr, rows, p.k, out);
    } else {  // the last rows of W: one at a time (the same sums, see dot_tile)
      for (int j = 0; j < nj; ++j) dot_rows<1>(p.x + r0 * p.k, p.k, nr, rows + j, p.k, out + j);
    }
    for (int j = 0; j < nj; ++j)
      for (int r = 0; r < nr; ++r) {
        const float s = p.bias ? out[j][r] + p.bias[j0 + j] : out[j][r];
        float& dst = p.y[(r0 + r) * p.n + j0 + j];
        dst = p.accumulate ? dst + s : s;
      }
  }
}

// y[r, j] (+)= Σ_c x[r, c] · W[j, c] for m ≤ kSmallM: W is read once, kWRows rows at a time
// (bf16 widened in registers; fp16 widened into a per-thread buffer first), dotted with
// every x row; OpenMP over those groups of W rows. The next group's rows are prefetched:
// without it the lone-row case ran ~30% slower than a chunked loop the hardware prefetcher
// followed better (LM head, 311 MB of bf16). Memory bound on W for a few rows, FMA bound
// towards kSmallM, and no per-call cost of widening the whole of W first.
void linear_small_m(const LinearParams& p) {
  const size_t esize = dtype_size(p.w_dtype);
  const size_t row_bytes = static_cast<size_t>(p.k) * esize;
  const char* w = static_cast<const char*>(p.w);
  const int64_t groups = (p.n + kWRows - 1) / kWRows;
#pragma omp parallel for schedule(static) if (p.n * p.k > 65536)
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t j0 = g * kWRows;
    const int nj = static_cast<int>(std::min<int64_t>(kWRows, p.n - j0));
    if (j0 + kWRows < p.n) {
      const char* next = w + static_cast<size_t>(j0 + kWRows) * row_bytes;
      const size_t bytes = static_cast<size_t>(std::min<int64_t>(kWRows, p.n - j0 - kWRows)) * row_bytes;
      for (size_t b = 0; b < bytes; b += 64) __builtin_prefetch(next + b);
    }
    if (p.w_dtype == DType::kBF16) {
      const uint16_t* rows[kWRows];
      for (int j = 0; j < nj; ++j)
        rows[j] = reinterpret_cast<const uint16_t*>(w + static_cast<size_t>(j0 + j) * row_bytes);
      small_m_rows(p, rows, j0, nj);
    } else {
      // Per thread and reused (a fresh buffer per group would allocate every time).
      thread_local std::vector<float> wide;
      if (wide.size() < static_cast<size_t>(kWRows * p.k)) wide.resize(static_cast<size_t>(kWRows * p.k));
      const float* rows[kWRows];
      for (int j = 0; j < nj; ++j) {
        float* dst = wide.data() + j * p.k;
        detail::widen_to_f32(w + static_cast<size_t>(j0 + j) * row_bytes, p.w_dtype, dst, p.k);
        rows[j] = dst;
      }
      small_m_rows(p, rows, j0, nj);
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
