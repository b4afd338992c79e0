// Internal to ops/cpu: the blocked online-softmax step (FlashAttention-2, Dao 2023, Alg. 1)
// shared by the contiguous kernel (attention.cpp) and the paged one (paged_attention.cpp).
// A work item owns `rows` query rows (query × q head of one GQA group), pre-scaled in `qs`;
// key tiles stream past it and update a running (max m, sum l, unnormalised o) per row.
#pragma once

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace longctx::cpu::tile {

inline constexpr float kNegInf = -std::numeric_limits<float>::infinity();
inline constexpr int kLanes = 16;

// e^x for x ≤ 0 (scores minus their running max), branch-free so the loop vectorises:
// Cephes expf, n = round(x·log2 e), r = x − n·ln 2 (ln 2 split hi/lo), |r| ≤ ln2/2,
// degree-6 polynomial: ≤ 2 ulp. Below -87 (and for -inf, the mask) it returns 0.
inline float exp_nonpos(float x) {
  const float xc = std::min(std::max(x, -88.0f), 88.0f);
  const float magic = 12582912.0f;  // 1.5·2^23: adding and subtracting rounds to an integer
  const float n = (xc * 1.44269504088896341f + magic) - magic;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float poly = 1.9875691500e-4f;
  poly = poly * r + 1.3981999507e-3f;
  poly = poly * r + 8.3334519073e-3f;
  poly = poly * r + 4.1665795894e-2f;
  poly = poly * r + 1.6666665459e-1f;
  poly = poly * r + 5.0000001201e-1f;
  const float e = poly * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return x < -87.0f ? 0.0f : e * scale;
}

inline float row_max(const float* s, int64_t n) {
  float lanes[kLanes];
  for (int l = 0; l < kLanes; ++l) lanes[l] = kNegInf;
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) lanes[l] = lanes[l] > s[j + l] ? lanes[l] : s[j + l];
  for (; j < n; ++j) lanes[0] = std::max(lanes[0], s[j]);
  float mx = kNegInf;
  for (int l = 0; l < kLanes; ++l) mx = std::max(mx, lanes[l]);
  return mx;
}

// s[j] = e^(s[j] − m), returns Σ s[j].
inline float exp_and_sum(float* s, int64_t n, float m) {
  float lanes[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      s[j + l] = exp_nonpos(s[j + l] - m);
      lanes[l] += s[j + l];
    }
  for (; j < n; ++j) {
    s[j] = exp_nonpos(s[j] - m);
    lanes[0] += s[j];
  }
  float sum = 0;
  for (int l = 0; l < kLanes; ++l) sum += lanes[l];
  return sum;
}

// Running state of a work item's rows. Invariant after every tile: m[r] = max score seen,
// l[r] = Σ e^(score − m[r]), o[r] = Σ e^(score − m[r])·v, over the visible keys so far.
struct RowState {
  float* o;  // [rows, d]
  float* m;  // [rows]
  float* l;  // [rows]
  int64_t rows, d;

  void reset() const {
    std::fill(o, o + rows * d, 0.0f);
    std::fill(m, m + rows, kNegInf);
    std::fill(l, l + rows, 0.0f);
  }
};

// Turns one tile of masked scores s ([rows, bk], row stride lds, -inf = invisible) into
// probabilities relative to each row's new running max, rescaling o and l to that max.
// The caller then adds P·V to o.
inline void softmax_step(float* s, int64_t lds, int64_t bk, const RowState& st) {
  for (int64_t r = 0; r < st.rows; ++r) {
    float* sr = s + r * lds;
    const float m_new = std::max(st.m[r], row_max(sr, bk));
    if (m_new == kNegInf) {  // nothing visible yet: contribute nothing (and no inf − inf)
      std::fill(sr, sr + bk, 0.0f);
      continue;
    }
    const float alpha = exp_nonpos(st.m[r] - m_new);  // m[r] = -inf gives 0
    if (alpha != 1.0f) {
      float* orow = st.o + r * st.d;
      for (int64_t c = 0; c < st.d; ++c) orow[c] *= alpha;
    }
    st.l[r] = st.l[r] * alpha + exp_and_sum(sr, bk, m_new);
    st.m[r] = m_new;
  }
}

// One tile of bk keys through two sgemms: S = Qs·Kᵀ, mask_row(r, S_r) hides invisible keys
// (called only when needs_mask), softmax step, O += P·V. k and v have token stride ldk/ldv;
// s is scratch of [rows, lds ≥ bk].
template <class MaskRow>
void gemm_tile(const float* qs, const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t bk,
               float* s, int64_t lds, const RowState& st, bool needs_mask, MaskRow&& mask_row) {
  const int rows = static_cast<int>(st.rows), d = static_cast<int>(st.d);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, static_cast<int>(bk), d, 1.0f, qs, d, k,
              static_cast<int>(ldk), 0.0f, s, static_cast<int>(lds));
  if (needs_mask)
    for (int64_t r = 0; r < st.rows; ++r) mask_row(r, s + r * lds);
  softmax_step(s, lds, bk, st);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, static_cast<int>(bk), 1.0f, s,
              static_cast<int>(lds), v, static_cast<int>(ldv), 1.0f, st.o, d);
}

// Writes row r normalised to dst[0, d) and its natural-log LSE to *lse (when lse is set);
// a row that saw no key gives zeros and -inf.
inline void finish_row(const RowState& st, int64_t r, float* dst, float* lse) {
  if (st.l[r] == 0.0f) {
    std::fill(dst, dst + st.d, 0.0f);
    if (lse) *lse = kNegInf;
    return;
  }
  const float inv = 1.0f / st.l[r];
  const float* o = st.o + r * st.d;
  for (int64_t c = 0; c < st.d; ++c) dst[c] = o[c] * inv;
  if (lse) *lse = st.m[r] + std::log(st.l[r]);
}

}  // namespace longctx::cpu::tile
