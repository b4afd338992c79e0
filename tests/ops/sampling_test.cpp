// The sampler against distributions computed independently here: chi-square tests over
// 20,000 seeded draws on a small row, and an exact comparison of the filtered
// distribution with a full-sort float64 reference on large rows. Deterministic: fixed
// seeds, so a pass is a pass.
#include "ops/cpu/sampling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <string>

namespace longctx::cpu {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
const std::vector<float> kLogits = {2.0f, 1.5f, 1.0f, 0.5f, 0.0f, -0.5f, -1.0f, -2.0f};

// Expected probabilities: softmax(l / T), then keep by rank/prob, renormalise.
std::vector<double> expected(float t, int top_k, double top_p, double min_p) {
  const size_t n = kLogits.size();  // kLogits is sorted descending, so rank = index
  std::vector<double> p(n);
  for (size_t i = 0; i < n; ++i) p[i] = std::exp(double(kLogits[i]) / t);
  double z = std::accumulate(p.begin(), p.end(), 0.0);
  for (double& x : p) x /= z;
  std::vector<bool> keep(n, true);
  if (top_k > 0)
    for (size_t i = static_cast<size_t>(top_k); i < n; ++i) keep[i] = false;
  // top-p over the top-k renormalised distribution
  double kz = 0;
  for (size_t i = 0; i < n; ++i) kz += keep[i] ? p[i] : 0;
  double cum = 0;
  bool reached = false;
  for (size_t i = 0; i < n; ++i) {
    if (!keep[i]) continue;
    if (reached) keep[i] = false;
    cum += p[i] / kz;
    if (cum >= top_p) reached = true;
  }
  for (size_t i = 0; i < n; ++i)
    if (p[i] < min_p * p[0]) keep[i] = false;
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += keep[i] ? p[i] : 0;
  for (size_t i = 0; i < n; ++i) p[i] = keep[i] ? p[i] / s : 0;
  return p;
}

// 0.999 quantiles of chi-square for 1..7 degrees of freedom (standard tables).
double chi2_999(int dof) {
  static const double q[] = {0, 10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322};
  return q[dof];
}

std::vector<int> draw_counts(const SamplingParams& p, uint64_t seed, int draws) {
  Sampler s(p, seed);
  std::vector<int> counts(kLogits.size(), 0);
  for (int i = 0; i < draws; ++i) {
    std::vector<float> row = kLogits;
    counts[static_cast<size_t>(s.sample(row.data(), static_cast<int64_t>(row.size()), {}, {}).token)] += 1;
  }
  return counts;
}

void check_distribution(SamplingParams p, uint64_t seed) {
  const auto want = expected(p.temperature, p.top_k, p.top_p, p.min_p);
  const int draws = 20000;
  const auto counts = draw_counts(p, seed, draws);
  double chi2 = 0;
  int dof = -1;
  for (size_t i = 0; i < want.size(); ++i) {
    if (want[i] == 0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " was filtered out but drawn";
      continue;
    }
    const double e = want[i] * draws;
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
    ++dof;
  }
  ASSERT_GE(dof, 1);
  EXPECT_LT(chi2, chi2_999(dof)) << "T=" << p.temperature << " top_k=" << p.top_k << " top_p=" << p.top_p
                                 << " min_p=" << p.min_p;
}

TEST(Sampling, TemperatureMatchesSoftmax) {
  for (float t : {0.7f, 1.5f}) {
    SamplingParams p;
    p.temperature = t;
    check_distribution(p, 1);
  }
}

TEST(Sampling, TopKTopPMinPMatchTheirDefinitions) {
  SamplingParams k;
  k.top_k = 3;
  check_distribution(k, 2);
  SamplingParams tp;
  tp.top_p = 0.8f;
  check_distribution(tp, 3);
  SamplingParams mp;
  mp.min_p = 0.2f;
  check_distribution(mp, 4);
  SamplingParams all;
  all.temperature = 0.9f;
  all.top_k = 5;
  all.top_p = 0.9f;
  all.min_p = 0.05f;
  check_distribution(all, 5);
  SamplingParams kp;  // min-p after top-k, without top-p
  kp.temperature = 1.3f;
  kp.top_k = 6;
  kp.min_p = 0.3f;
  check_distribution(kp, 6);
}

TEST(Sampling, TheChiSquareCheckCanFail) {
  // Sampling at T = 1 judged against the T = 0.7 distribution must be rejected.
  const auto wrong = expected(0.7f, -1, 1.0, 0.0);
  const auto counts = draw_counts(SamplingParams{}, 9, 20000);
  double chi2 = 0;
  for (size_t i = 0; i < wrong.size(); ++i)
    chi2 += std::pow(counts[i] - wrong[i] * 20000, 2) / (wrong[i] * 20000);
  EXPECT_GT(chi2, chi2_999(7));
}

TEST(Sampling, SampleWithTemperatureIsTheSamplersStream) {
  SamplingParams p;
  p.temperature = 0.8f;
  Sampler s(p, 77);
  std::mt19937_64 rng(77);
  for (int i = 0; i < 200; ++i) {
    std::vector<float> row = kLogits;
    ASSERT_EQ(sample_with_temperature(kLogits.data(), 8, 0.8f, rng), s.sample(row.data(), 8, {}, {}).token)
        << i;
  }
  EXPECT_EQ(sample_with_temperature(kLogits.data(), 8, 0.0f, rng), 0);
}

TEST(Sampling, GreedyIsArgmaxWithTiesToTheLowestId) {
  SamplingParams p;
  p.temperature = 0;
  Sampler s(p, 0);
  std::vector<float> row = {0.1f, 3.0f, 3.0f, -1.0f};
  EXPECT_EQ(s.sample(row.data(), 4, {}, {}).token, 1);
  std::vector<float> nan_first = {std::nanf(""), -1.0f, 2.0f};  // NaN ranks as -inf
  EXPECT_EQ(argmax(nan_first.data(), 3), 2);
}

TEST(Sampling, NarrowFiltersLeaveOnlyTheTopToken) {
  SamplingParams tiny_p;
  tiny_p.top_p = 1e-6f;
  SamplingParams full_min_p;
  full_min_p.min_p = 1.0f;
  SamplingParams k1;
  k1.top_k = 1;
  for (const SamplingParams& p : {tiny_p, full_min_p, k1}) {
    const auto counts = draw_counts(p, 11, 500);
    EXPECT_EQ(counts[0], 500);
  }
}

TEST(Sampling, TopKKeepsTiesWithTheKthLogit) {
  // HF and vLLM mask logits < the k-th largest, so every token tied with it stays.
  const std::vector<float> row = {3.0f, 2.0f, 1.0f, 2.0f, 2.0f, 0.0f};
  SamplingParams p;
  p.top_k = 2;
  const auto dist = filtered_distribution(row.data(), 6, p);
  std::vector<int32_t> ids;
  double z = std::exp(3.0) + 3 * std::exp(2.0), sum = 0;
  for (const auto& [id, prob] : dist) {
    ids.push_back(id);
    EXPECT_NEAR(prob, std::exp(double(row[static_cast<size_t>(id)])) / z, 1e-6) << id;
    sum += prob;
  }
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 1, 3, 4}));  // ranked: best first, ties to the lower id
  EXPECT_NEAR(sum, 1.0, 1e-6);
}

// Float64 reference of temperature → top-k → top-p → min-p over a full sort of the row.
// Returns the probability of each id (-1: filtered out), and in `slack` the ids whose fate sits within
// rounding of a top-p or min-p boundary (either answer is right for those). `order`: the ids by logit
// descending, ties to the lower id.
std::vector<double> reference_distribution(const std::vector<float>& l, const std::vector<int32_t>& order,
                                           const SamplingParams& p, std::vector<int32_t>& slack) {
  const auto n = static_cast<int64_t>(l.size());
  const double mx = l[order[0]];
  std::vector<double> w(l.size());
  for (size_t i = 0; i < l.size(); ++i) w[i] = std::exp((double(l[i]) - mx) / p.temperature);
  size_t kept = order.size();
  if (p.top_k > 0 && p.top_k < n) {
    const float kth = l[order[static_cast<size_t>(p.top_k - 1)]];
    kept = static_cast<size_t>(p.top_k);
    while (kept < order.size() && l[order[kept]] == kth) ++kept;
  }
  double z = 0;
  for (size_t i = 0; i < kept; ++i) z += w[order[i]];
  if (p.top_p < 1.0f) {
    double cum = 0;
    size_t i = 0;
    for (; i < kept; ++i) {
      const double before = cum / z;
      cum += w[order[i]];
      if (std::fabs(before - p.top_p) < 1e-5 || std::fabs(cum / z - p.top_p) < 1e-5)
        slack.push_back(order[i]);
      if (cum / z >= p.top_p) break;
    }
    kept = std::min(kept, i + 1);
  }
  size_t min_p_kept = 0;
  while (min_p_kept < kept && w[order[min_p_kept]] >= p.min_p) {
    if (std::fabs(w[order[min_p_kept]] - p.min_p) < 1e-5) slack.push_back(order[min_p_kept]);
    ++min_p_kept;
  }
  kept = std::max<size_t>(min_p_kept, 1);
  double s = 0;
  for (size_t i = 0; i < kept; ++i) s += w[order[i]];
  std::vector<double> out(l.size(), -1.0);
  for (size_t i = 0; i < kept; ++i) out[static_cast<size_t>(order[i])] = w[order[i]] / s;
  return out;
}

TEST(Sampling, FilteredDistributionMatchesAFullSortReferenceOnLargeRows) {
  const int64_t n = 50000;
  std::mt19937 rng(123);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  bool saw_wide_nucleus = false;
  int boundary_cases = 0, cases = 0;
  for (float scale : {0.3f, 4.0f}) {  // a flat row (nucleus of thousands) and a peaked one
    std::vector<float> row(static_cast<size_t>(n));
    for (auto& v : row) v = scale * normal(rng);
    {  // ties with the 40th largest logit: top-k = 40 must keep them
      std::vector<float> sorted = row;
      std::sort(sorted.begin(), sorted.end(), std::greater<>());
      for (auto& v : row)
        if (v == sorted[40] || v == sorted[41]) v = sorted[39];
    }
    std::vector<int32_t> order(row.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return row[a] > row[b]; });
    for (float t : {0.5f, 2.0f})
      for (int32_t k : {-1, 1, 40, 5000})
        for (float top_p : {1.0f, 0.5f, 0.95f, 0.999f})
          for (float min_p : {0.0f, 0.1f}) {
            SamplingParams p;
            p.temperature = t;
            p.top_k = k;
            p.top_p = top_p;
            p.min_p = min_p;
            std::vector<int32_t> slack;
            const auto want = reference_distribution(row, order, p, slack);
            const auto got = filtered_distribution(row.data(), n, p);
            const std::string what = "scale=" + std::to_string(scale) + " T=" + std::to_string(t) +
                                     " k=" + std::to_string(k) + " top_p=" + std::to_string(top_p) +
                                     " min_p=" + std::to_string(min_p);
            std::vector<double> got_prob(row.size(), -1.0);
            for (const auto& [id, prob] : got) {
              ASSERT_EQ(got_prob[static_cast<size_t>(id)], -1.0) << what << ": id " << id << " twice";
              got_prob[static_cast<size_t>(id)] = prob;
            }
            if (k == -1 && top_p < 1.0f && got.size() > 4096) saw_wide_nucleus = true;
            bool differing = false;  // a boundary token went the other way: renormalisation differs a little
            for (size_t id = 0; id < row.size(); ++id)
              if ((want[id] < 0) != (got_prob[id] < 0)) {
                ASSERT_TRUE(std::count(slack.begin(), slack.end(), static_cast<int32_t>(id)))
                    << what << ": id " << id << (want[id] < 0 ? " kept" : " dropped");
                differing = true;
              }
            ++cases;
            boundary_cases += differing;
            for (size_t id = 0; id < row.size() && !differing; ++id)
              if (want[id] >= 0) {
                ASSERT_NEAR(got_prob[id], want[id], 1e-6 + 1e-4 * want[id]) << what << " id " << id;
              }
          }
  }
  EXPECT_LE(boundary_cases * 10, cases) << "too few cases compared exactly";
  EXPECT_TRUE(saw_wide_nucleus) << "no case ranked past the first batches of the adaptive top-p";
}

TEST(Sampling, SeededStreamsAreReproducibleAndDistinct) {
  for (const float top_p : {1.0f, 0.9f}) {
    SamplingParams p;
    p.top_p = top_p;
    auto draw = [&](uint64_t seed) {
      Sampler s(p, seed);
      std::vector<int32_t> out;
      for (int i = 0; i < 100; ++i) {
        std::vector<float> row = kLogits;
        out.push_back(s.sample(row.data(), 8, {}, {}).token);
      }
      return out;
    };
    EXPECT_EQ(draw(42), draw(42));
    EXPECT_NE(draw(42), draw(43));
  }
}

TEST(Sampling, PenaltiesFollowTheirFormulas) {
  SamplingParams p;
  p.temperature = 0;
  p.repetition_penalty = 2.0f;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  Sampler s(p, 0);
  std::vector<float> row = {4.0f, -4.0f, 1.0f, 3.0f, -1.0f};
  const std::vector<int32_t> prompt = {0, 4, 4, 99},
                             output = {1, 3, 3, 4, -1};  // 99, -1: out of range, ignored
  s.sample(row.data(), 5, prompt, output);
  EXPECT_FLOAT_EQ(row[0], 2.0f);                     // prompt: 4 / 2
  EXPECT_FLOAT_EQ(row[1], -8.0f - 0.25f - 0.5f);     // output once: -4 * 2, frequency, presence
  EXPECT_FLOAT_EQ(row[2], 1.0f);                     // unseen
  EXPECT_FLOAT_EQ(row[3], 1.5f - 2 * 0.25f - 0.5f);  // output twice: 3 / 2, 2 × frequency, presence
  EXPECT_FLOAT_EQ(row[4], -2.0f - 0.25f - 0.5f);     // prompt twice and output once: repetition once

  std::vector<float> same = kLogits;  // default params change nothing
  apply_penalties(same.data(), 8, SamplingParams{}, prompt, output);
  EXPECT_EQ(same, kLogits);
}

TEST(Sampling, BannedTokensAreNeverDrawn) {
  SamplingParams p;
  Sampler s(p, 5);
  const std::vector<int32_t> banned = {0, 1};
  for (int i = 0; i < 2000; ++i) {
    std::vector<float> row = kLogits;
    const int32_t t = s.sample(row.data(), 8, {}, {}, banned).token;
    ASSERT_NE(t, 0);
    ASSERT_NE(t, 1);
  }
  SamplingParams g;  // greedy too
  g.temperature = 0;
  Sampler greedy(g, 0);
  std::vector<float> row = kLogits;
  EXPECT_EQ(greedy.sample(row.data(), 8, {}, {}, banned).token, 2);
}

TEST(Sampling, NaNLogitsAreNeverDrawnAndAFullyMaskedRowGivesTokenZero) {
  SamplingParams p;
  p.top_p = 0.9f;
  p.logprobs = 2;
  Sampler s(p, 3);
  for (int i = 0; i < 500; ++i) {
    std::vector<float> row = {std::nanf(""), 0.0f, std::nanf(""), 0.5f};
    const int32_t t = s.sample(row.data(), 4, {}, {}).token;
    ASSERT_TRUE(t == 1 || t == 3) << t;
  }
  std::vector<float> row = {1.0f, 2.0f, 3.0f};
  const std::vector<int32_t> all = {0, 1, 2};
  const auto got = s.sample(row.data(), 3, {}, {}, all);
  EXPECT_EQ(got.token, 0);
  EXPECT_EQ(got.logprob, -kInf);
  ASSERT_EQ(got.top_logprobs.size(), 2u);
  EXPECT_EQ(got.top_logprobs[0].second, -kInf);
}

TEST(Sampling, LogprobsAreTheRawLogSoftmaxAndTopKIsSorted) {
  SamplingParams p;
  p.temperature = 0.5f;  // logprobs ignore temperature (raw)
  p.top_k = 2;           // and the filters
  p.logprobs = 3;
  Sampler s(p, 1);
  std::vector<float> row = kLogits;
  const auto got = s.sample(row.data(), 8, {}, {});
  double z = 0;
  for (float l : kLogits) z += std::exp(double(l));
  EXPECT_NEAR(got.logprob, kLogits[static_cast<size_t>(got.token)] - std::log(z), 1e-5);
  ASSERT_EQ(got.top_logprobs.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(got.top_logprobs[static_cast<size_t>(i)].first, i);
    EXPECT_NEAR(got.top_logprobs[static_cast<size_t>(i)].second,
                kLogits[static_cast<size_t>(i)] - std::log(z), 1e-5);
  }
  p.logprobs = 0;  // only the sampled token's
  Sampler s0(p, 1);
  row = kLogits;
  EXPECT_TRUE(s0.sample(row.data(), 8, {}, {}).top_logprobs.empty());
}

TEST(Sampling, TokenLogprobsMatchAFullSortOnALargeRow) {
  const int64_t n = 151936;  // Qwen2's vocab
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> row(static_cast<size_t>(n));
  for (auto& v : row) v = normal(rng);
  row[100] = row[200] = 30.0f;  // a tie at the top: lower id first
  row[300] = -kInf;
  double mx = 30.0, z = 0;
  for (float v : row) z += std::exp(double(v) - mx);
  const double log_z = mx + std::log(z);
  std::vector<int32_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return row[a] > row[b]; });

  const auto got = token_logprobs(row.data(), n, 12345, kMaxLogprobs);
  EXPECT_NEAR(got.logprob, row[12345] - log_z, 1e-4);
  ASSERT_EQ(got.top_logprobs.size(), static_cast<size_t>(kMaxLogprobs));
  for (size_t i = 0; i < got.top_logprobs.size(); ++i) {
    EXPECT_EQ(got.top_logprobs[i].first, order[i]) << i;
    EXPECT_NEAR(got.top_logprobs[i].second, row[static_cast<size_t>(order[i])] - log_z, 1e-4) << i;
  }
  EXPECT_EQ(token_logprobs(row.data(), n, 300, 0).logprob, -kInf);
  EXPECT_TRUE(token_logprobs(row.data(), n, 0, 0).top_logprobs.empty());
  EXPECT_EQ(token_logprobs(kLogits.data(), 8, 0, kMaxLogprobs).top_logprobs.size(),
            8u);  // k > n: all, ranked
}

TEST(Sampling, ValidateNamesTheFieldAndRange) {
  auto bad = [](auto mutate, const std::string& field) {
    SamplingParams p;
    mutate(p);
    Status st = validate(p);
    ASSERT_FALSE(st.is_ok()) << field;
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(st.message().rfind(field + " must be", 0), 0u) << st.message();
  };
  bad([](SamplingParams& p) { p.top_p = 0; }, "top_p");
  bad([](SamplingParams& p) { p.top_p = 1.5f; }, "top_p");
  bad([](SamplingParams& p) { p.top_p = std::nanf(""); }, "top_p");
  bad([](SamplingParams& p) { p.temperature = -1; }, "temperature");
  bad([](SamplingParams& p) { p.temperature = kInf; }, "temperature");
  bad([](SamplingParams& p) { p.top_k = -2; }, "top_k");
  bad([](SamplingParams& p) { p.min_p = 1.5f; }, "min_p");
  bad([](SamplingParams& p) { p.min_p = -0.1f; }, "min_p");
  bad([](SamplingParams& p) { p.repetition_penalty = 0; }, "repetition_penalty");
  bad([](SamplingParams& p) { p.presence_penalty = 3; }, "presence_penalty");
  bad([](SamplingParams& p) { p.presence_penalty = -2.5f; }, "presence_penalty");
  bad([](SamplingParams& p) { p.frequency_penalty = -3; }, "frequency_penalty");
  bad([](SamplingParams& p) { p.frequency_penalty = 2.5f; }, "frequency_penalty");
  bad([](SamplingParams& p) { p.logprobs = kMaxLogprobs + 1; }, "logprobs");
  bad([](SamplingParams& p) { p.logprobs = -2; }, "logprobs");

  SamplingParams p;
  p.top_p = 1.5f;
  EXPECT_EQ(validate(p).message(), "top_p must be in (0, 1], got 1.5");
  p = {};
  p.logprobs = 21;
  EXPECT_NE(validate(p).message().find("[0, 20]"), std::string::npos) << validate(p).message();

  EXPECT_TRUE(validate(SamplingParams{}).is_ok());
  SamplingParams edges;  // the ends of every range are allowed
  edges.temperature = 0;
  edges.top_k = 0;
  edges.top_p = 1;
  edges.min_p = 1;
  edges.presence_penalty = -2;
  edges.frequency_penalty = 2;
  edges.logprobs = kMaxLogprobs;
  EXPECT_TRUE(validate(edges).is_ok()) << validate(edges).message();
}

}  // namespace
}  // namespace longctx::cpu
