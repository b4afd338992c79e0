// The sampler against distributions computed independently here, by chi-square tests
// over 20,000 seeded draws (deterministic: fixed seeds, so a pass is a pass).
#include "ops/cpu/sampling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace longctx::cpu {
namespace {

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

// 0.999 quantiles of chi-square for 1..7 degrees of freedom.
double chi2_999(int dof) {
  static const double q[] = {0, 10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322};
  return q[dof];
}

void check_distribution(SamplingParams p, uint64_t seed) {
  const auto want = expected(p.temperature, p.top_k, p.top_p, p.min_p);
  Sampler s(p, seed);
  const int draws = 20000;
  std::vector<int> counts(kLogits.size(), 0);
  for (int i = 0; i < draws; ++i) {
    std::vector<float> row = kLogits;
    counts[static_cast<size_t>(s.sample(row.data(), static_cast<int64_t>(row.size()), {}, {}).token)] += 1;
  }
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
}

TEST(Sampling, TheChiSquareCheckCanFail) {
  // Sampling at T = 1 judged against the T = 0.7 distribution must be rejected.
  const auto wrong = expected(0.7f, -1, 1.0, 0.0);
  SamplingParams p;
  Sampler s(p, 9);
  std::vector<int> counts(kLogits.size(), 0);
  for (int i = 0; i < 20000; ++i) {
    std::vector<float> row = kLogits;
    counts[static_cast<size_t>(s.sample(row.data(), 8, {}, {}).token)] += 1;
  }
  double chi2 = 0;
  for (size_t i = 0; i < wrong.size(); ++i) chi2 += std::pow(counts[i] - wrong[i] * 20000, 2) / (wrong[i] * 20000);
  EXPECT_GT(chi2, chi2_999(7));
}

TEST(Sampling, GreedyIsArgmaxWithTiesToTheLowestId) {
  SamplingParams p;
  p.temperature = 0;
  Sampler s(p, 0);
  std::vector<float> row = {0.1f, 3.0f, 3.0f, -1.0f};
  EXPECT_EQ(s.sample(row.data(), 4, {}, {}).token, 1);
}

TEST(Sampling, SeededStreamsAreReproducibleAndDistinct) {
  SamplingParams p;
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

TEST(Sampling, PenaltiesFollowTheirFormulas) {
  SamplingParams p;
  p.temperature = 0;
  p.repetition_penalty = 2.0f;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  Sampler s(p, 0);
  std::vector<float> row = {4.0f, -4.0f, 1.0f, 3.0f};
  const std::vector<int32_t> prompt = {0}, output = {1, 3, 3};
  s.sample(row.data(), 4, prompt, output);
  EXPECT_FLOAT_EQ(row[0], 2.0f);                        // prompt: 4 / 2
  EXPECT_FLOAT_EQ(row[1], -8.0f - 0.5f - 0.25f);        // output once: -4 * 2, presence, frequency
  EXPECT_FLOAT_EQ(row[2], 1.0f);                        // unseen
  EXPECT_FLOAT_EQ(row[3], 1.5f - 0.5f - 2 * 0.25f);     // output twice: 3 / 2, presence, 2 × frequency
}

TEST(Sampling, BannedTokensAreNeverDrawn) {
  SamplingParams p;
  Sampler s(p, 5);
  for (int i = 0; i < 2000; ++i) {
    std::vector<float> row = kLogits;
    const std::vector<int32_t> banned = {0, 1};
    const int32_t t = s.sample(row.data(), 8, {}, {}, banned).token;
    ASSERT_NE(t, 0);
    ASSERT_NE(t, 1);
  }
}

TEST(Sampling, LogprobsAreTheRawLogSoftmaxAndTopKIsSorted) {
  SamplingParams p;
  p.temperature = 0.5f;  // logprobs ignore temperature (raw)
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
    EXPECT_NEAR(got.top_logprobs[static_cast<size_t>(i)].second, kLogits[static_cast<size_t>(i)] - std::log(z), 1e-5);
  }
}

TEST(Sampling, ValidateNamesTheFieldAndRange) {
  auto bad = [](auto mutate, const std::string& field) {
    SamplingParams p;
    mutate(p);
    Status st = validate(p);
    ASSERT_FALSE(st.is_ok()) << field;
    EXPECT_NE(st.message().find(field), std::string::npos) << st.message();
  };
  bad([](SamplingParams& p) { p.top_p = 0; }, "top_p");
  bad([](SamplingParams& p) { p.top_p = 1.5f; }, "top_p");
  bad([](SamplingParams& p) { p.temperature = -1; }, "temperature");
  bad([](SamplingParams& p) { p.top_k = -2; }, "top_k");
  bad([](SamplingParams& p) { p.min_p = 1.5f; }, "min_p");
  bad([](SamplingParams& p) { p.repetition_penalty = 0; }, "repetition_penalty");
  bad([](SamplingParams& p) { p.presence_penalty = 3; }, "presence_penalty");
  bad([](SamplingParams& p) { p.frequency_penalty = -3; }, "frequency_penalty");
  bad([](SamplingParams& p) { p.logprobs = 1000; }, "logprobs");
  EXPECT_TRUE(validate(SamplingParams{}).is_ok());
}

}  // namespace
}  // namespace longctx::cpu
