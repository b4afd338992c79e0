#include "ops/cpu/activation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace longctx::cpu {
namespace {

TEST(SiluMul, ReadsFusedGateUpInPlace) {
  const int64_t rows = 5, n = 37;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-8.0f, 8.0f);
  std::vector<float> gate_up(static_cast<size_t>(rows * 2 * n));  // [rows, gate | up]
  for (auto& v : gate_up) v = u(rng);
  gate_up[0] = -200.0f;  // e^200 overflows fp32: must give -0·up, not NaN
  gate_up[1] = 200.0f;
  std::vector<float> out(static_cast<size_t>(rows * n));
  silu_mul(gate_up.data(), gate_up.data() + n, out.data(), rows, n, 2 * n);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) {
      const double g = gate_up[r * 2 * n + j], up = gate_up[r * 2 * n + n + j];
      const double ref = g / (1.0 + std::exp(-g)) * up;
      ASSERT_NEAR(out[r * n + j], ref, 1e-6 * std::max(1.0, std::fabs(ref))) << r << "," << j;
    }
}

TEST(Softmax, StableRowsSumToOne) {
  const int64_t rows = 4, n = 1001;
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> u(-30.0f, 30.0f);
  std::vector<float> x(static_cast<size_t>(rows * n));
  for (auto& v : x) v = u(rng);
  x[5] = 1000.0f;  // would overflow exp without the max subtraction
  x[n + 3] = -INFINITY;
  const auto in = x;
  softmax(x.data(), rows, n);
  for (int64_t r = 0; r < rows; ++r) {
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < n; ++j) mx = std::max(mx, static_cast<double>(in[r * n + j]));
    for (int64_t j = 0; j < n; ++j) sum += std::exp(in[r * n + j] - mx);
    for (int64_t j = 0; j < n; ++j) {
      // fp32 rounds x - max to ~1e-7 of its size, which e^ turns into relative error.
      const double ref = std::exp(in[r * n + j] - mx) / sum;
      ASSERT_NEAR(x[r * n + j], ref, 1e-5 * ref + 1e-30) << r << "," << j;
    }
  }
  EXPECT_EQ(x[n + 3], 0.0f);
}

TEST(Softmax, AllMaskedRowGivesZeros) {
  std::vector<float> x(8, -INFINITY);
  softmax(x.data(), 1, 8);
  for (float v : x) EXPECT_EQ(v, 0.0f);
}

}  // namespace
}  // namespace longctx::cpu
