#include "ops/cpu/linear.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace longctx::cpu {
namespace {

struct Case {
  int64_t m, n, k;
};

std::vector<float> random_vec(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

// Stores w in `dtype` and returns (raw bytes, the values it actually holds as fp32).
std::pair<std::vector<uint16_t>, std::vector<float>> quantize(const std::vector<float>& w, DType dtype) {
  std::vector<uint16_t> raw(w.size());
  std::vector<float> held(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    raw[i] = dtype == DType::kBF16 ? f32_to_bf16(w[i]) : f32_to_f16(w[i]);
    held[i] = dtype == DType::kBF16 ? bf16_to_f32(raw[i]) : f16_to_f32(raw[i]);
  }
  return {raw, held};
}

// y0 (the prior y when accumulating) + x·Wᵀ + bias, all in double.
std::vector<double> reference(const std::vector<float>& x, const std::vector<float>& w, const float* bias,
                              const std::vector<float>* y0, const Case& c) {
  std::vector<double> y(static_cast<size_t>(c.m * c.n));
  for (int64_t r = 0; r < c.m; ++r)
    for (int64_t j = 0; j < c.n; ++j) {
      double s = y0 ? (*y0)[r * c.n + j] : 0.0;
      for (int64_t i = 0; i < c.k; ++i) s += static_cast<double>(x[r * c.k + i]) * w[j * c.k + i];
      if (bias) s += bias[j];
      y[r * c.n + j] = s;
    }
  return y;
}

void expect_close(const std::vector<float>& got, const std::vector<double>& ref, double rtol) {
  double scale = 1e-30;
  for (double v : ref) scale = std::max(scale, std::fabs(v));
  ASSERT_EQ(got.size(), ref.size());
  for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(got[i], ref[i], rtol * scale) << "at " << i;
}

void run(DType dtype, const Case& c, bool with_bias, bool accumulate) {
  SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " m=" << c.m << " n=" << c.n << " k=" << c.k
                                  << " bias=" << with_bias << " acc=" << accumulate);
  const auto x = random_vec(static_cast<size_t>(c.m * c.k), 1);
  const auto w = random_vec(static_cast<size_t>(c.n * c.k), 2);
  const auto bias = random_vec(static_cast<size_t>(c.n), 3);
  auto y = random_vec(static_cast<size_t>(c.m * c.n), 4);
  const auto y0 = y;
  if (!accumulate) std::fill(y.begin(), y.end(), NAN);  // y = ... must not read y

  LinearParams p;
  p.x = x.data();
  p.m = c.m, p.n = c.n, p.k = c.k;
  p.bias = with_bias ? bias.data() : nullptr;
  p.y = y.data();
  p.accumulate = accumulate;
  p.w_dtype = dtype;
  std::vector<float> held = w;
  std::vector<uint16_t> raw;
  if (dtype == DType::kF32) {
    p.w = w.data();
  } else {
    std::tie(raw, held) = quantize(w, dtype);  // reference uses the values the weights hold
    p.w = raw.data();
  }
  linear(p);
  expect_close(y, reference(x, held, p.bias, accumulate ? &y0 : nullptr, c), 1e-5);
}

// m up to kLinearSmallM (16 or 32) takes the streaming path for half-precision W, above it
// the panels; n not a multiple of the W rows per tile (3 or 2), k not a multiple of the
// vector; row counts that leave a partial row group (8 or 4).
const Case kCases[] = {{1, 37, 19},   {1, 300, 513},  {3, 300, 129},  {5, 301, 77},  {7, 1000, 300},
                       {9, 40, 1000}, {12, 97, 33},   {16, 64, 257},  {17, 65, 200}, {32, 70, 100},
                       {33, 1100, 70}, {64, 17, 1024}};

TEST(Linear, F32) {
  for (const auto& c : kCases)
    for (bool bias : {false, true})
      for (bool acc : {false, true}) run(DType::kF32, c, bias, acc);
}

TEST(Linear, BF16) {
  for (const auto& c : kCases)
    for (bool bias : {false, true})
      for (bool acc : {false, true}) run(DType::kBF16, c, bias, acc);
}

TEST(Linear, F16) {
  for (const auto& c : kCases)
    for (bool bias : {false, true})
      for (bool acc : {false, true}) run(DType::kF16, c, bias, acc);
}

// n well past one weight panel and not a multiple of it (k = 2048 gives 128-row panels).
TEST(Linear, BF16ManyPanelsOddN) {
  run(DType::kBF16, {9, 333, 2048}, true, false);
  run(DType::kF16, {9, 333, 2048}, false, true);
}

// Up to kLinearSmallM rows, a row's bits do not depend on how many rows share the call
// (the engine's batch-invariance below that size rests on it): every row of an m-row call
// equals the same row computed alone, for every m up to the limit.
TEST(Linear, SmallMRowsAreBatchInvariant) {
  const int64_t n = 131, k = 1000;  // n % 3 and n % 2 leave remainders; k % 16 ≠ 0
  const auto w = random_vec(static_cast<size_t>(n * k), 7);
  const auto raw = quantize(w, DType::kBF16).first;
  const auto x = random_vec(static_cast<size_t>(kLinearSmallM * k), 8);
  auto call = [&](const float* rows, int64_t m) {
    std::vector<float> y(static_cast<size_t>(m * n));
    LinearParams p;
    p.x = rows, p.w = raw.data(), p.w_dtype = DType::kBF16, p.y = y.data();
    p.m = m, p.n = n, p.k = k;
    linear(p);
    return y;
  };
  for (int64_t m = 1; m <= kLinearSmallM; ++m) {
    const auto y = call(x.data(), m);
    for (int64_t r = 0; r < m; ++r) {
      const auto alone = call(x.data() + r * k, 1);
      for (int64_t j = 0; j < n; ++j)
        ASSERT_EQ(y[r * n + j], alone[j]) << "m=" << m << " row " << r << " col " << j;
    }
  }
}

TEST(Linear, SgemmNtMatchesReference) {
  const Case c{5, 23, 41};
  const auto a = random_vec(static_cast<size_t>(c.m * c.k), 5);
  const auto b = random_vec(static_cast<size_t>(c.n * c.k), 6);
  std::vector<float> out(static_cast<size_t>(c.m * c.n));
  sgemm_nt(a.data(), b.data(), out.data(), c.m, c.n, c.k);
  expect_close(out, reference(a, b, nullptr, nullptr, c), 1e-5);
}

}  // namespace
}  // namespace longctx::cpu
