#include "ops/cpu/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

namespace longctx::cpu {
namespace {

constexpr int64_t kTokens = 5, kHeads = 3, kHeadDim = 24, kRot = 16, kStride = 80;  // token stride > H·D

std::vector<double> inv_freq(int64_t rot, double theta) {
  std::vector<double> f(static_cast<size_t>(rot / 2));
  for (int64_t i = 0; i < rot / 2; ++i) f[i] = 1.0 / std::pow(theta, 2.0 * i / rot);
  return f;
}

// transformers: q·cos + rotate_half(q)·sin with cos = cat(freqs, freqs); for the
// interleaved style q is first permuted by view(d/2, 2).transpose (DeepSeek-V3).
std::vector<double> reference_head(const float* x, int64_t pos, const std::vector<double>& f,
                                   RopeStyle style) {
  const int64_t half = kRot / 2;
  std::vector<double> q(x, x + kHeadDim);
  if (style == RopeStyle::kInterleaved)
    for (int64_t i = 0; i < half; ++i) {
      q[i] = x[2 * i];
      q[i + half] = x[2 * i + 1];
    }
  std::vector<double> out = q;
  for (int64_t j = 0; j < kRot; ++j) {
    const double angle = pos * f[j % half];
    const double rotated = j < half ? -q[j + half] : q[j - half];
    out[j] = q[j] * std::cos(angle) + rotated * std::sin(angle);
  }
  return out;
}

void check(RopeStyle style) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(kTokens * kStride));
  for (auto& v : x) v = u(rng);
  const auto before = x;
  const std::vector<int32_t> positions = {0, 3, 1000, 131071, 17};  // non-contiguous
  const auto f = inv_freq(kRot, 500000.0);
  RopeParams p;
  p.x = x.data();
  p.num_tokens = kTokens, p.num_heads = kHeads, p.head_dim = kHeadDim, p.token_stride = kStride;
  p.rotary_dim = kRot;
  p.positions = positions.data();
  p.inv_freq = f.data();
  p.style = style;
  apply_rope(p);
  for (int64_t t = 0; t < kTokens; ++t) {
    for (int64_t h = 0; h < kHeads; ++h) {
      const size_t off = static_cast<size_t>(t * kStride + h * kHeadDim);
      const auto ref = reference_head(before.data() + off, positions[t], f, style);
      for (int64_t j = 0; j < kHeadDim; ++j)
        ASSERT_NEAR(x[off + j], ref[j], 1e-6) << t << "," << h << "," << j;
      for (int64_t j = kRot; j < kHeadDim; ++j) ASSERT_EQ(x[off + j], before[off + j]);  // pass-through dims
    }
    for (int64_t j = kHeads * kHeadDim; j < kStride; ++j)  // padding between tokens untouched
      ASSERT_EQ(x[t * kStride + j], before[t * kStride + j]);
  }
}

TEST(Rope, RotateHalfMatchesTransformers) { check(RopeStyle::kRotateHalf); }
TEST(Rope, InterleavedMatchesTransformersDeepseekV3) { check(RopeStyle::kInterleaved); }

TEST(Rope, InterleavedOutputIsInRotateHalfOrder) {
  // Position 0 is the identity rotation: the interleaved style only de-interleaves.
  std::vector<float> x = {0, 1, 2, 3, 4, 5, 6, 7};
  const std::vector<int32_t> pos = {0};
  const auto f = inv_freq(8, 10000.0);
  RopeParams p;
  p.x = x.data();
  p.num_tokens = 1, p.num_heads = 1, p.head_dim = 8;
  p.positions = pos.data();
  p.inv_freq = f.data();
  p.style = RopeStyle::kInterleaved;
  apply_rope(p);
  EXPECT_EQ(x, (std::vector<float>{0, 2, 4, 6, 1, 3, 5, 7}));
}

TEST(Rope, RejectsOddRotaryDim) {
  std::vector<float> x(8);
  const std::vector<int32_t> pos = {0};
  const auto f = inv_freq(8, 10000.0);
  RopeParams p;
  p.x = x.data();
  p.num_tokens = 1, p.num_heads = 1, p.head_dim = 8, p.rotary_dim = 5;
  p.positions = pos.data();
  p.inv_freq = f.data();
  EXPECT_THROW(apply_rope(p), std::invalid_argument);
}

}  // namespace
}  // namespace longctx::cpu
