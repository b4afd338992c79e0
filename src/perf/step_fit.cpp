#include "perf/step_fit.h"

#include <array>
#include <cmath>
#include <limits>

namespace longctx {
namespace {

constexpr int kFeatures = 9;
using Row = std::array<double, kFeatures>;

Row features(const MeasuredStep& s, const RooflineCostModel& roofline, int64_t small_m) {
  double tokens = 0, pairs = 0, kv_tokens = 0;
  for (const ChunkWork& c : s.chunks) {
    const double q = static_cast<double>(c.new_tokens), ctx = static_cast<double>(c.context_tokens);
    tokens += q;
    pairs += q * ctx + q * (q + 1) / 2;
    kv_tokens += ctx + q;
  }
  const double seqs = static_cast<double>(s.chunks.size()), m = static_cast<double>(small_m);
  const double wide_gemm = small_m > 0 && tokens > m ? 1.0 : 0.0;
  const double wide_head = small_m > 0 && seqs > m ? 1.0 : 0.0;
  const double narrow_tokens = small_m > 0 && tokens <= m ? tokens : 0.0;
  // A backend with a regime switch (the CPU) is priced by its regime terms, not by a scaled
  // roofline GEMM time (on the CPU that column is the constant and tokens again, and a fit
  // that leans on it cannot be priced without the model's shape: bench/step_fidelity.py).
  const double gemm = small_m > 0 ? 0.0 : roofline.breakdown(s.chunks).gemm_s;
  return {1.0, seqs, tokens, pairs, kv_tokens, narrow_tokens, wide_gemm, wide_head, gemm};
}

// Least squares on the features in `mask` by the normal equations (columns scaled to
// unit norm first: pairs and seconds differ by 10 orders of magnitude). False when
// singular.
bool solve_subset(const std::vector<Row>& x, const std::vector<double>& y, unsigned mask, Row& coef) {
  std::vector<int> cols;
  for (int j = 0; j < kFeatures; ++j)
    if (mask & (1u << j)) cols.push_back(j);
  const size_t k = cols.size();
  Row scale{};
  for (int j : cols) {
    double s = 0;
    for (const Row& r : x) s += r[j] * r[j];
    if (s <= 0) return false;
    scale[j] = std::sqrt(s);
  }
  std::vector<std::vector<double>> a(k, std::vector<double>(k + 1, 0.0));
  for (size_t i = 0; i < x.size(); ++i)
    for (size_t p = 0; p < k; ++p) {
      const double xp = x[i][cols[p]] / scale[cols[p]];
      for (size_t q = 0; q < k; ++q) a[p][q] += xp * x[i][cols[q]] / scale[cols[q]];
      a[p][k] += xp * y[i];
    }
  // Gaussian elimination with partial pivoting.
  for (size_t c = 0; c < k; ++c) {
    size_t piv = c;
    for (size_t r = c + 1; r < k; ++r)
      if (std::abs(a[r][c]) > std::abs(a[piv][c])) piv = r;
    if (std::abs(a[piv][c]) < 1e-12) return false;
    std::swap(a[c], a[piv]);
    for (size_t r = 0; r < k; ++r) {
      if (r == c) continue;
      const double f = a[r][c] / a[c][c];
      for (size_t q = c; q <= k; ++q) a[r][q] -= f * a[c][q];
    }
  }
  coef = {};
  for (size_t p = 0; p < k; ++p) coef[cols[p]] = a[p][k] / a[p][p] / scale[cols[p]];
  return true;
}

}  // namespace

Result<StepCalibration> fit_step_calibration(std::span<const MeasuredStep> steps, const RooflineCostModel& roofline,
                                             const std::string& model_name, int64_t small_m) {
  if (steps.size() < kFeatures)
    return invalid_argument("a step fit needs at least " + std::to_string(kFeatures) + " measured steps, got " +
                            std::to_string(steps.size()));
  std::vector<Row> x;
  std::vector<double> y;
  for (const MeasuredStep& s : steps) {
    x.push_back(features(s, roofline, small_m));
    y.push_back(s.seconds);
  }
  // Relative error is what matters (a 1 ms decode and a 1 s prefill alike): weight each
  // row by 1 / measured time.
  std::vector<Row> xw = x;
  std::vector<double> yw = y;
  for (size_t i = 0; i < x.size(); ++i) {
    const double w = y[i] > 0 ? 1.0 / y[i] : 0.0;
    for (double& v : xw[i]) v *= w;
    yw[i] *= w;
  }
  double best = std::numeric_limits<double>::infinity();
  Row best_coef{};
  for (unsigned mask = 1; mask < (1u << kFeatures); ++mask) {
    Row coef;
    if (!solve_subset(xw, yw, mask, coef)) continue;
    bool nonneg = true;
    for (double c : coef) nonneg &= c >= 0;
    if (!nonneg) continue;
    double sse = 0;
    for (size_t i = 0; i < xw.size(); ++i) {
      double pred = 0;
      for (int j = 0; j < kFeatures; ++j) pred += coef[j] * xw[i][j];
      sse += (pred - yw[i]) * (pred - yw[i]);
    }
    if (sse < best) best = sse, best_coef = coef;
  }
  if (!std::isfinite(best)) return internal_error("no non-negative step fit (measured steps all zero?)");
  StepCalibration c;
  c.model = model_name;
  c.layer_params_per_token = roofline.model().layer_params_per_token;
  c.attn_flops_per_pair = roofline.model().attn_flops_per_pair;
  c.step_s = best_coef[0];
  c.per_seq_s = best_coef[1];
  c.per_token_s = best_coef[2];
  c.per_pair_s = best_coef[3];
  c.per_kv_token_s = best_coef[4];
  c.per_narrow_token_s = best_coef[5];
  c.wide_gemm_s = best_coef[6];
  c.wide_head_s = best_coef[7];
  c.small_m = small_m;
  c.gemm_scale = best_coef[8];
  c.num_samples = static_cast<int64_t>(steps.size());
  c.rms_rel_error = std::sqrt(best / static_cast<double>(steps.size()));
  return c;
}

}  // namespace longctx
