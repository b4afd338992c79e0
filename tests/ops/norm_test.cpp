#include "ops/cpu/norm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace longctx::cpu {
namespace {

std::vector<float> random_vec(size_t n, uint32_t seed, float lo = -2.0f, float hi = 2.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

std::vector<double> reference(const std::vector<float>& x, const std::vector<float>& w, int64_t rows,
                              int64_t dim, double eps) {
  std::vector<double> out(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(x[r * dim + i]) * x[r * dim + i];
    const double inv = 1.0 / std::sqrt(ss / dim + eps);
    for (int64_t i = 0; i < dim; ++i) out[r * dim + i] = x[r * dim + i] * inv * w[i];
  }
  return out;
}

void expect_rel(const std::vector<float>& got, const std::vector<double>& ref, double rtol) {
  for (size_t i = 0; i < ref.size(); ++i)
    ASSERT_NEAR(got[i], ref[i], rtol * std::max(1e-3, std::fabs(ref[i]))) << "at " << i;
}

TEST(RmsNorm, MatchesFloat64Reference) {
  for (int64_t dim : {1, 7, 64, 1000, 4099}) {
    const int64_t rows = 13;
    const auto x = random_vec(static_cast<size_t>(rows * dim), 1);
    const auto w = random_vec(static_cast<size_t>(dim), 2, 0.5f, 1.5f);
    std::vector<float> out(x.size());
    rms_norm(x.data(), w.data(), out.data(), rows, dim, 1e-6f);
    expect_rel(out, reference(x, w, rows, dim, 1e-6f), 1e-6);
  }
}

TEST(RmsNorm, InPlaceAndEpsDominates) {
  const int64_t rows = 3, dim = 16;
  auto x = random_vec(static_cast<size_t>(rows * dim), 3, -1e-4f, 1e-4f);  // eps comparable to mean(x²)
  const auto w = random_vec(static_cast<size_t>(dim), 4, 0.5f, 1.5f);
  const auto ref = reference(x, w, rows, dim, 1e-8f);
  rms_norm(x.data(), w.data(), x.data(), rows, dim, 1e-8f);
  expect_rel(x, ref, 1e-6);
}

TEST(AddRmsNorm, UpdatesResidualAndNormalisesIt) {
  const int64_t rows = 9, dim = 333;
  auto residual = random_vec(static_cast<size_t>(rows * dim), 5);
  auto x = random_vec(static_cast<size_t>(rows * dim), 6);
  const auto w = random_vec(static_cast<size_t>(dim), 7, 0.5f, 1.5f);
  std::vector<float> sum(residual.size());
  for (size_t i = 0; i < sum.size(); ++i) sum[i] = residual[i] + x[i];
  const auto ref = reference(sum, w, rows, dim, 1e-5f);
  add_rms_norm(residual.data(), x.data(), w.data(), x.data(), rows, dim, 1e-5f);  // out aliases x
  EXPECT_EQ(residual, sum);
  expect_rel(x, ref, 1e-6);
}

}  // namespace
}  // namespace longctx::cpu
