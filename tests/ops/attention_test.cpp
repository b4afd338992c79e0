#include "ops/cpu/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <stdexcept>
#include <vector>

namespace longctx::cpu {
namespace {

constexpr float kNegInf = -INFINITY;

struct Problem {
  int64_t num_q = 0, num_kv = 0, hq = 0, hkv = 0, d = 0;
  int64_t q_stride = 0, kv_stride = 0;  // 0 = contiguous
  bool causal = true;
  int64_t q_pos0 = 0;
  std::vector<int32_t> kv_pos;  // always explicit here; passed as kv_pos0 or kv_positions
  bool explicit_positions = false;
  float scale = 0;
  std::vector<float> q, k, v;

  int64_t qs() const { return q_stride ? q_stride : hq * d; }
  int64_t ks() const { return kv_stride ? kv_stride : hkv * d; }
};

Problem make_problem(int64_t num_q, int64_t num_kv, int64_t hq, int64_t hkv, int64_t d, uint32_t seed) {
  Problem pr;
  pr.num_q = num_q, pr.num_kv = num_kv, pr.hq = hq, pr.hkv = hkv, pr.d = d;
  pr.kv_pos.resize(static_cast<size_t>(num_kv));
  std::iota(pr.kv_pos.begin(), pr.kv_pos.end(), 0);
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  pr.q.resize(static_cast<size_t>(num_q * hq * d));
  pr.k.resize(static_cast<size_t>(num_kv * hkv * d));
  pr.v.resize(pr.k.size());
  for (auto& x : pr.q) x = 2.0f * n(rng);  // scores of a few units: a peaked softmax
  for (auto& x : pr.k) x = n(rng);
  for (auto& x : pr.v) x = n(rng);
  return pr;
}

// Re-lays q/k/v with token strides larger than the heads (as in a fused qkv buffer).
void make_strided(Problem& pr, int64_t q_pad, int64_t kv_pad) {
  auto relayout = [](const std::vector<float>& src, int64_t tokens, int64_t row, int64_t stride) {
    std::vector<float> dst(static_cast<size_t>(tokens * stride), NAN);  // padding must never be read
    for (int64_t t = 0; t < tokens; ++t) std::copy_n(src.begin() + t * row, row, dst.begin() + t * stride);
    return dst;
  };
  pr.q = relayout(pr.q, pr.num_q, pr.hq * pr.d, pr.hq * pr.d + q_pad);
  pr.k = relayout(pr.k, pr.num_kv, pr.hkv * pr.d, pr.hkv * pr.d + kv_pad);
  pr.v = relayout(pr.v, pr.num_kv, pr.hkv * pr.d, pr.hkv * pr.d + kv_pad);
  pr.q_stride = pr.hq * pr.d + q_pad;
  pr.kv_stride = pr.hkv * pr.d + kv_pad;
}

struct Result {
  std::vector<float> out, lse;
};

Result run(const Problem& pr) {
  Result r;
  r.out.assign(static_cast<size_t>(pr.num_q * pr.hq * pr.d), NAN);
  r.lse.assign(static_cast<size_t>(pr.num_q * pr.hq), NAN);
  AttentionParams p;
  p.q = pr.q.data(), p.k = pr.k.data(), p.v = pr.v.data();
  p.out = r.out.data(), p.lse = r.lse.data();
  p.num_q = pr.num_q, p.num_kv = pr.num_kv;
  p.num_q_heads = pr.hq, p.num_kv_heads = pr.hkv, p.head_dim = pr.d;
  p.q_stride = pr.q_stride, p.kv_stride = pr.kv_stride;
  p.scale = pr.scale;
  p.causal = pr.causal;
  p.q_pos0 = pr.q_pos0;
  if (pr.explicit_positions) {
    p.kv_positions = pr.kv_pos.data();
  } else {
    p.kv_pos0 = pr.kv_pos.empty() ? 0 : pr.kv_pos[0];  // contiguous by construction
  }
  attention(p);
  return r;
}

struct Reference {
  std::vector<double> out, lse;
};

// Straight from the definition, in double: softmax over the visible keys, then Σ p·v.
Reference reference(const Problem& pr) {
  Reference ref;
  ref.out.assign(static_cast<size_t>(pr.num_q * pr.hq * pr.d), 0.0);
  ref.lse.assign(static_cast<size_t>(pr.num_q * pr.hq), -INFINITY);
  const double scale = pr.scale != 0 ? pr.scale : 1.0 / std::sqrt(static_cast<double>(pr.d));
  const int64_t group = pr.hq / pr.hkv;
  for (int64_t i = 0; i < pr.num_q; ++i)
    for (int64_t h = 0; h < pr.hq; ++h) {
      const float* q = pr.q.data() + i * pr.qs() + h * pr.d;
      const int64_t g = h / group;
      std::vector<double> s;
      std::vector<int64_t> keys;
      for (int64_t j = 0; j < pr.num_kv; ++j) {
        if (pr.causal && pr.kv_pos[j] > pr.q_pos0 + i) continue;
        const float* k = pr.k.data() + j * pr.ks() + g * pr.d;
        double dot = 0;
        for (int64_t c = 0; c < pr.d; ++c) dot += static_cast<double>(q[c]) * k[c];
        s.push_back(dot * scale);
        keys.push_back(j);
      }
      if (s.empty()) continue;
      const double mx = *std::max_element(s.begin(), s.end());
      double sum = 0;
      for (double x : s) sum += std::exp(x - mx);
      ref.lse[i * pr.hq + h] = mx + std::log(sum);
      for (size_t n = 0; n < s.size(); ++n) {
        const double w = std::exp(s[n] - mx) / sum;
        const float* v = pr.v.data() + keys[n] * pr.ks() + g * pr.d;
        for (int64_t c = 0; c < pr.d; ++c) ref.out[(i * pr.hq + h) * pr.d + c] += w * v[c];
      }
    }
  return ref;
}

void expect_matches(const Result& got, const Reference& ref, double rtol = 1e-5) {
  double scale = 1e-30;
  for (double x : ref.out) scale = std::max(scale, std::fabs(x));
  for (size_t i = 0; i < ref.out.size(); ++i)
    ASSERT_NEAR(got.out[i], ref.out[i], rtol * scale) << "out " << i;
  for (size_t i = 0; i < ref.lse.size(); ++i) {
    if (std::isinf(ref.lse[i])) {
      ASSERT_EQ(got.lse[i], kNegInf) << "lse " << i;
    } else {
      ASSERT_NEAR(got.lse[i], ref.lse[i], rtol * std::max(1.0, std::fabs(ref.lse[i]))) << "lse " << i;
    }
  }
}

TEST(Attention, CausalMhaSeveralQueryAndKeyBlocks) {
  auto pr = make_problem(300, 300, 2, 2, 32, 1);
  expect_matches(run(pr), reference(pr));
}

TEST(Attention, GqaChunkOverCachedPrefix) {
  // A 37-token chunk after a 300-token cached prefix: q_pos0 = 300 over keys 0..336.
  auto pr = make_problem(37, 337, 8, 2, 64, 2);
  pr.q_pos0 = 300;
  expect_matches(run(pr), reference(pr));
}

TEST(Attention, MqaDecodeOneQuery) {
  auto pr = make_problem(1, 600, 6, 1, 128, 3);
  pr.q_pos0 = 599;
  expect_matches(run(pr), reference(pr));
}

TEST(Attention, NonCausalSeesEveryKey) {
  auto pr = make_problem(20, 45, 4, 2, 16, 4);
  pr.causal = false;
  pr.q_pos0 = 0;  // would hide most keys if the mask applied
  expect_matches(run(pr), reference(pr));
}

TEST(Attention, ExplicitUnsortedKeyPositions) {
  auto pr = make_problem(40, 500, 4, 4, 32, 5);
  std::mt19937 rng(9);
  std::vector<int32_t> pos(1000);
  std::iota(pos.begin(), pos.end(), 0);
  std::shuffle(pos.begin(), pos.end(), rng);
  pr.kv_pos.assign(pos.begin(), pos.begin() + 500);  // a scattered half of positions 0..999
  pr.explicit_positions = true;
  pr.q_pos0 = 480;  // queries at 480..519: each sees a different subset
  expect_matches(run(pr), reference(pr));
}

TEST(Attention, StridedInputsAndCustomScale) {
  auto pr = make_problem(70, 90, 4, 2, 64, 6);
  make_strided(pr, 24, 40);
  pr.q_pos0 = 20;
  pr.scale = 0.3f;
  expect_matches(run(pr), reference(pr));
}

TEST(Attention, QueryWithNoVisibleKeyGivesZerosAndNegInf) {
  auto pr = make_problem(15, 8, 2, 1, 16, 7);
  for (auto& x : pr.kv_pos) x += 10;  // keys at 10..17, queries at 0..14
  const auto got = run(pr);
  const auto ref = reference(pr);
  expect_matches(got, ref);
  for (int64_t i = 0; i < 10; ++i)
    for (int64_t h = 0; h < 2; ++h) {
      EXPECT_EQ(got.lse[i * 2 + h], kNegInf);
      for (int64_t c = 0; c < 16; ++c) EXPECT_EQ(got.out[(i * 2 + h) * 16 + c], 0.0f);
    }
  EXPECT_TRUE(std::isfinite(got.lse[10 * 2]));
}

TEST(Attention, EmptyKeySet) {
  auto pr = make_problem(3, 0, 2, 2, 8, 8);
  const auto got = run(pr);
  for (float x : got.lse) EXPECT_EQ(x, kNegInf);
  for (float x : got.out) EXPECT_EQ(x, 0.0f);
}

TEST(Attention, RejectsHeadsNotMultipleOfKvHeads) {
  auto pr = make_problem(1, 4, 3, 2, 8, 9);
  EXPECT_THROW(run(pr), std::invalid_argument);
}

// Attention over the key subset `keys` of pr (its k/v gathered, positions explicit).
Result run_subset(const Problem& pr, const std::vector<int64_t>& keys) {
  Problem sub = pr;
  sub.num_kv = static_cast<int64_t>(keys.size());
  sub.kv_stride = 0;
  sub.k.clear(), sub.v.clear(), sub.kv_pos.clear();
  for (int64_t j : keys) {
    const auto kb = pr.k.begin() + j * pr.ks(), vb = pr.v.begin() + j * pr.ks();
    sub.k.insert(sub.k.end(), kb, kb + pr.hkv * pr.d);
    sub.v.insert(sub.v.end(), vb, vb + pr.hkv * pr.d);
    sub.kv_pos.push_back(pr.kv_pos[j]);
  }
  sub.explicit_positions = true;
  return run(sub);
}

// DESIGN §3: attention over disjoint key subsets merged by LSE equals attention over all.
void check_split(const Problem& pr, const std::vector<std::vector<int64_t>>& parts) {
  const Result full = run(pr);
  Result acc = run_subset(pr, parts[0]);
  for (size_t s = 1; s < parts.size(); ++s) {
    const Result part = run_subset(pr, parts[s]);
    merge_attention_states(acc.out.data(), acc.lse.data(), part.out.data(), part.lse.data(), acc.out.data(),
                           acc.lse.data(), pr.num_q * pr.hq, pr.d);  // output aliases a
  }
  for (size_t i = 0; i < full.out.size(); ++i)
    ASSERT_NEAR(acc.out[i], full.out[i], 1e-5 * std::max(1.0f, std::fabs(full.out[i]))) << "out " << i;
  for (size_t i = 0; i < full.lse.size(); ++i) {
    if (full.lse[i] == kNegInf) {
      ASSERT_EQ(acc.lse[i], kNegInf);
    } else {
      ASSERT_NEAR(acc.lse[i], full.lse[i], 1e-5 * std::max(1.0f, std::fabs(full.lse[i]))) << "lse " << i;
    }
  }
}

TEST(AttentionSplit, ContiguousShardsMergeToFull) {
  // Causal prefill: early queries see nothing of the later shards (lse = -inf there).
  auto pr = make_problem(100, 100, 4, 2, 32, 10);
  for (int parts : {2, 3}) {
    std::vector<std::vector<int64_t>> split(static_cast<size_t>(parts));
    for (int64_t j = 0; j < pr.num_kv; ++j) split[static_cast<size_t>(j * parts / pr.num_kv)].push_back(j);
    check_split(pr, split);
  }
}

TEST(AttentionSplit, RoundRobinShardsMergeToFull) {
  // DCP-style token round-robin over a cached prefix, GQA and MQA.
  for (int64_t hkv : {2, 1}) {
    auto pr = make_problem(30, 530, 4, hkv, 64, 11);
    pr.q_pos0 = 500;
    for (int parts : {2, 3}) {
      std::vector<std::vector<int64_t>> split(static_cast<size_t>(parts));
      for (int64_t j = 0; j < pr.num_kv; ++j) split[static_cast<size_t>(j % parts)].push_back(j);
      check_split(pr, split);
    }
  }
}

TEST(MergeAttentionStates, MatchesDefinition) {
  const std::vector<float> oa = {1, 2, -3}, ob = {4, -5, 6};
  const std::vector<float> la = {0.7f}, lb = {-1.3f};
  std::vector<float> o(3), l(1);
  merge_attention_states(oa.data(), la.data(), ob.data(), lb.data(), o.data(), l.data(), 1, 3);
  const double lse = std::log(std::exp(0.7) + std::exp(-1.3));
  EXPECT_NEAR(l[0], lse, 1e-6);
  for (int c = 0; c < 3; ++c)
    EXPECT_NEAR(o[c], std::exp(0.7 - lse) * oa[c] + std::exp(-1.3 - lse) * ob[c], 1e-6);
}

TEST(MergeAttentionStates, NegInfSideDropsOut) {
  // The empty side's output is garbage (NaN): it must not be read into the result.
  std::vector<float> oa = {1, 2, NAN, NAN}, ob = {NAN, NAN, 3, 4};
  std::vector<float> la = {0.5f, kNegInf}, lb = {kNegInf, 2.5f};
  merge_attention_states(oa.data(), la.data(), ob.data(), lb.data(), oa.data(), la.data(), 2,
                         2);  // aliases a
  EXPECT_EQ(oa, (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(la, (std::vector<float>{0.5f, 2.5f}));
}

TEST(MergeAttentionStates, BothNegInfGiveZerosNotNan) {
  std::vector<float> oa = {NAN, 1}, ob = {2, NAN};
  std::vector<float> la = {kNegInf}, lb = {kNegInf};
  std::vector<float> o(2, 7.0f), l(1, 7.0f);
  merge_attention_states(oa.data(), la.data(), ob.data(), lb.data(), o.data(), l.data(), 1, 2);
  EXPECT_EQ(o, (std::vector<float>{0, 0}));
  EXPECT_EQ(l[0], kNegInf);
}

TEST(MergeAttentionStates, LargeLseGapStaysFinite) {
  std::vector<float> oa = {1}, ob = {2};
  std::vector<float> la = {1000.0f}, lb = {-1000.0f};
  merge_attention_states(oa.data(), la.data(), ob.data(), lb.data(), oa.data(), la.data(), 1, 1);
  EXPECT_EQ(oa[0], 1.0f);
  EXPECT_EQ(la[0], 1000.0f);
}

}  // namespace
}  // namespace longctx::cpu
