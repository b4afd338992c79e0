// skinny_linear (decode GEMMs, m ≤ 8) against a float64 reference, and its row
// independence: a row's output is the same bits whatever m is.
#include <gtest/gtest.h>

#include "cuda/test_util.h"
#include "ops/cuda/skinny_linear.h"

namespace longctx::cuda::test {
namespace {

struct SkinnyCase {
  int64_t m, n, k;
  DType y_dtype;
  bool bias, accumulate;
};

class SkinnyLinearTest : public ::testing::TestWithParam<SkinnyCase> {};

TEST_P(SkinnyLinearTest, MatchesFloat64Reference) {
  const SkinnyCase c = GetParam();
  Rng rng;
  SCOPED_TRACE("seed " + std::to_string(rng.seed));
  const auto x = rng.bf16(c.m * c.k), w = rng.bf16(c.n * c.k, 0.05f);
  const auto xd = to_double(x), wd = to_double(w);
  std::vector<double> ref(c.m * c.n, 0.0), bias_d(c.n, 0.0), y0_d(c.m * c.n, 0.0);
  DeviceBuffer<uint16_t> dx(x), dw(w);
  DeviceBuffer<float> y32(c.m * c.n), b32(c.n);
  DeviceBuffer<uint16_t> y16(c.m * c.n), b16(c.n);
  const bool f32 = c.y_dtype == DType::kF32;
  if (c.bias) {
    if (f32) {
      auto b = rng.f32(c.n);
      bias_d = to_double(b);
      b32.upload(b);
    } else {
      auto b = rng.bf16(c.n);
      bias_d = to_double(b);
      b16.upload(b);
    }
  }
  if (c.accumulate) {
    if (f32) {
      auto y0 = rng.f32(c.m * c.n);
      y0_d = to_double(y0);
      y32.upload(y0);
    } else {
      auto y0 = rng.bf16(c.m * c.n);
      y0_d = to_double(y0);
      y16.upload(y0);
    }
  }
  parallel_for(c.m, [&](int64_t i) {
    for (int64_t j = 0; j < c.n; ++j) {
      double s = bias_d[j] + y0_d[i * c.n + j];
      for (int64_t l = 0; l < c.k; ++l) s += xd[i * c.k + l] * wd[j * c.k + l];
      ref[i * c.n + j] = s;
    }
  });
  SkinnyLinearParams p;
  p.x = dx.bf16();
  p.w = dw.bf16();
  p.bias =
      c.bias ? (f32 ? static_cast<const void*>(b32.get()) : static_cast<const void*>(b16.get())) : nullptr;
  p.y = f32 ? static_cast<void*>(y32.get()) : static_cast<void*>(y16.get());
  p.y_dtype = c.y_dtype;
  p.m = c.m, p.n = c.n, p.k = c.k;
  p.accumulate = c.accumulate;
  LAUNCH_OK(skinny_linear(p, nullptr));
  const double err = f32 ? rel_error(y32.download(), ref) : rel_error(y16.download(), ref);
  EXPECT_LE(err, f32 ? 1e-5 : 1e-2);
  RecordProperty("rel_error", std::to_string(err));
}

INSTANTIATE_TEST_SUITE_P(Shapes, SkinnyLinearTest,
                         ::testing::Values(SkinnyCase{1, 4096, 4096, DType::kBF16, false, false},
                                           SkinnyCase{3, 1000, 1032, DType::kBF16, true, false},
                                           SkinnyCase{8, 777, 2048, DType::kBF16, false, true},
                                           SkinnyCase{1, 512, 14336, DType::kF32, false, true},
                                           SkinnyCase{5, 300, 64, DType::kF32, true, true},
                                           SkinnyCase{8, 2000, 8, DType::kF32, false, false}));

TEST(SkinnyLinear, ARowsResultDoesNotDependOnM) {
  Rng rng;
  SCOPED_TRACE("seed " + std::to_string(rng.seed));
  const int64_t n = 515, k = 1024;
  const auto x = rng.bf16(8 * k), w = rng.bf16(n * k, 0.05f);
  DeviceBuffer<uint16_t> dx(x), dw(w);
  std::vector<std::vector<float>> outs;
  for (int64_t m : {1, 3, 8}) {
    DeviceBuffer<float> y(m * n);
    SkinnyLinearParams p;
    p.x = dx.bf16(), p.w = dw.bf16(), p.y = y.get(), p.y_dtype = DType::kF32, p.m = m, p.n = n, p.k = k;
    LAUNCH_OK(skinny_linear(p, nullptr));
    auto h = y.download();
    h.resize(n);  // row 0
    outs.push_back(h);
  }
  EXPECT_EQ(outs[0], outs[1]);
  EXPECT_EQ(outs[0], outs[2]);
}

TEST(SkinnyLinear, RejectsBadShapes) {
  SkinnyLinearParams p;
  p.m = 9, p.n = 1, p.k = 8;
  EXPECT_THROW(skinny_linear(p, nullptr), std::invalid_argument);
  p.m = 1, p.k = 12;
  DeviceBuffer<uint16_t> b(64);
  p.x = p.w = b.bf16();
  p.y = b.get();
  EXPECT_THROW(skinny_linear(p, nullptr), std::invalid_argument);
}

}  // namespace
}  // namespace longctx::cuda::test
