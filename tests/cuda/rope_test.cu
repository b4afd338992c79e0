// RoPE fused with the paged KV-cache write, against a float64 reference (angles in double
// from the same inv_freq). Bound 1e-2 on the rotated q and k (bf16 outputs); v is copied
// bit-exactly; slots marked −1 and slots no token maps to keep their poison.
#include <cmath>
#include <numeric>

#include "cuda/test_util.h"
#include "ops/cuda/rope.h"

namespace longctx::cuda::test {
namespace {

struct RopeCase {
  int64_t tokens, hq, hkv, d, rot;
  RopeStyle style;
};

class RopeKvTest : public ::testing::TestWithParam<RopeCase> {};

TEST_P(RopeKvTest, MatchesFloat64AndWritesSlots) {
  const RopeCase c = GetParam();
  Rng rng;
  SCOPED_TRACE("seed " + std::to_string(rng.seed));
  const int64_t width = (c.hq + 2 * c.hkv) * c.d;  // fused qkv row
  auto qkv = rng.bf16(c.tokens * width);
  const auto in = to_double(qkv);
  std::vector<int32_t> pos(c.tokens);
  for (auto& p : pos) p = static_cast<int32_t>(rng.uniform(0, 1'000'000));  // long-context angles
  std::vector<double> inv_freq(c.rot / 2);
  for (int64_t i = 0; i < c.rot / 2; ++i) inv_freq[i] = std::pow(1e6, -2.0 * i / c.rot);
  const int64_t block_size = 16, num_blocks = (c.tokens + block_size - 1) / block_size + 3;
  const int64_t num_slots = num_blocks * block_size;
  std::vector<int64_t> slot_perm(num_slots);
  std::iota(slot_perm.begin(), slot_perm.end(), 0);
  std::shuffle(slot_perm.begin() + block_size, slot_perm.end(), rng.gen);  // block 0 never used
  std::vector<int64_t> slots(c.tokens);
  for (int64_t t = 0; t < c.tokens; ++t) slots[t] = (t % 5 == 3) ? -1 : slot_perm[block_size + t];

  auto rotate = [&](const double* x, double* y, double p) {  // one head
    for (int64_t j = 0; j < c.d; ++j) y[j] = x[j];
    const int64_t half = c.rot / 2;
    for (int64_t i = 0; i < half; ++i) {
      const double a = p * inv_freq[i], co = std::cos(a), si = std::sin(a);
      const double x1 = c.style == RopeStyle::kRotateHalf ? x[i] : x[2 * i];
      const double x2 = c.style == RopeStyle::kRotateHalf ? x[i + half] : x[2 * i + 1];
      y[i] = x1 * co - x2 * si;
      y[i + half] = x2 * co + x1 * si;
    }
  };
  std::vector<double> q_ref(c.tokens * c.hq * c.d), k_ref(c.tokens * c.hkv * c.d);
  for (int64_t t = 0; t < c.tokens; ++t) {
    for (int64_t h = 0; h < c.hq; ++h) rotate(&in[t * width + h * c.d], &q_ref[(t * c.hq + h) * c.d], pos[t]);
    for (int64_t h = 0; h < c.hkv; ++h)
      rotate(&in[t * width + (c.hq + h) * c.d], &k_ref[(t * c.hkv + h) * c.d], pos[t]);
  }

  DeviceBuffer<uint16_t> dqkv(qkv), kc(num_slots * c.hkv * c.d), vc(num_slots * c.hkv * c.d);
  DeviceBuffer<int32_t> dpos(pos);
  DeviceBuffer<double> dinv(inv_freq);
  DeviceBuffer<int64_t> dslots(slots);
  RopeKvParams p;
  p.q = dqkv.bf16();
  p.q_stride = width;
  p.k = dqkv.bf16() + c.hq * c.d;
  p.v = dqkv.bf16() + (c.hq + c.hkv) * c.d;
  p.kv_stride = width;
  p.k_out = dqkv.bf16() + c.hq * c.d;  // k rotated in place too
  p.num_tokens = c.tokens;
  p.num_q_heads = c.hq;
  p.num_kv_heads = c.hkv;
  p.head_dim = c.d;
  p.rotary_dim = c.rot;
  p.positions = dpos.get();
  p.inv_freq = dinv.get();
  p.style = c.style;
  p.slots = dslots.get();
  p.k_cache = kc.bf16();
  p.v_cache = vc.bf16();
  LAUNCH_OK(rope_kv_write(p, nullptr));

  const auto out = dqkv.download(), kco = kc.download(), vco = vc.download();
  std::vector<uint16_t> q_out, k_out, k_cached;
  std::vector<double> k_cached_ref;
  for (int64_t t = 0; t < c.tokens; ++t) {
    q_out.insert(q_out.end(), out.begin() + t * width, out.begin() + t * width + c.hq * c.d);
    k_out.insert(k_out.end(), out.begin() + t * width + c.hq * c.d,
                 out.begin() + t * width + (c.hq + c.hkv) * c.d);
    // v in the fused buffer is untouched
    for (int64_t j = (c.hq + c.hkv) * c.d; j < width; ++j) ASSERT_EQ(qkv[t * width + j], out[t * width + j]);
    if (slots[t] < 0) continue;
    const int64_t base = slots[t] * c.hkv * c.d;
    k_cached.insert(k_cached.end(), kco.begin() + base, kco.begin() + base + c.hkv * c.d);
    k_cached_ref.insert(k_cached_ref.end(), k_ref.begin() + t * c.hkv * c.d,
                        k_ref.begin() + (t + 1) * c.hkv * c.d);
    for (int64_t j = 0; j < c.hkv * c.d; ++j)
      ASSERT_EQ(qkv[t * width + (c.hq + c.hkv) * c.d + j], vco[base + j]) << "v of token " << t;
  }
  EXPECT_LE(rel_error(q_out, q_ref), 1e-2);
  EXPECT_LE(rel_error(k_out, k_ref), 1e-2);
  EXPECT_LE(rel_error(k_cached, k_cached_ref), 1e-2);
  std::vector<uint16_t> k_out_slotted;  // k_out of the tokens that have a slot: equal to the cache
  for (int64_t t = 0; t < c.tokens; ++t)
    if (slots[t] >= 0)
      k_out_slotted.insert(k_out_slotted.end(), k_out.begin() + t * c.hkv * c.d,
                           k_out.begin() + (t + 1) * c.hkv * c.d);
  EXPECT_EQ(k_out_slotted, k_cached);
  // Slots that no token maps to stay poisoned (all bits set).
  std::vector<bool> used(num_slots, false);
  for (auto s : slots)
    if (s >= 0) used[s] = true;
  for (int64_t s = 0; s < num_slots; ++s)
    if (!used[s])
      for (int64_t j = 0; j < c.hkv * c.d; ++j) {
        ASSERT_EQ(0xffff, kco[s * c.hkv * c.d + j]) << "slot " << s;
        ASSERT_EQ(0xffff, vco[s * c.hkv * c.d + j]) << "slot " << s;
      }
}

INSTANTIATE_TEST_SUITE_P(Shapes, RopeKvTest,
                         ::testing::Values(RopeCase{37, 32, 8, 128, 128, RopeStyle::kRotateHalf},
                                           RopeCase{20, 16, 16, 64, 64, RopeStyle::kRotateHalf},
                                           RopeCase{9, 8, 1, 128, 64, RopeStyle::kRotateHalf},
                                           RopeCase{33, 16, 2, 128, 128, RopeStyle::kInterleaved},
                                           RopeCase{12, 4, 4, 192, 64, RopeStyle::kInterleaved},
                                           RopeCase{5, 2, 1, 512, 512, RopeStyle::kRotateHalf}));

TEST(RopeKv, RejectsBadRotaryDim) {
  RopeKvParams p;
  p.num_tokens = 1;
  p.head_dim = 64;
  p.rotary_dim = 30;
  EXPECT_THROW(rope_kv_write(p, nullptr), std::invalid_argument);
}

}  // namespace
}  // namespace longctx::cuda::test
