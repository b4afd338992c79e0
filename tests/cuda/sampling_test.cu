// cuda::sample against the CPU sampler (ops/cpu/sampling.h), which defines the semantics:
// the set of tokens the kernel draws must be cpu::filtered_distribution's, drawn with its
// probabilities (a chi-square test over many seeded draws), greedy must be cpu::argmax, and
// the logprob cpu::token_logprobs'. Logits are fresh random rows each run (the seed is
// printed); the sampling seeds are fixed, so a given row always gives the same draws.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cuda/test_util.h"
#include "ops/cpu/sampling.h"
#include "ops/cuda/sampling.h"

namespace longctx::cuda::test {
namespace {

constexpr float kInf = INFINITY;

struct Knobs {
  float temperature;
  int32_t top_k;
  float top_p;
  float min_p;
};

cpu::SamplingParams cpu_params(const Knobs& k) {
  cpu::SamplingParams p;
  p.temperature = k.temperature;
  p.top_k = k.top_k;
  p.top_p = k.top_p;
  p.min_p = k.min_p;
  return p;
}

SamplingRow row_params(const Knobs& k, uint64_t seed, uint64_t offset) {
  return SamplingRow{k.temperature, k.top_k, k.top_p, k.min_p, seed, offset};
}

std::string describe(const Knobs& k, int64_t n) {
  return "n " + std::to_string(n) + " T " + std::to_string(k.temperature) + " top_k " +
         std::to_string(k.top_k) + " top_p " + std::to_string(k.top_p) + " min_p " + std::to_string(k.min_p);
}

// Runs sample() on logits[rows, n] (host) with params[rows]; ids and logprobs come back.
void run_sample(const std::vector<float>& logits, int64_t n, const std::vector<SamplingRow>& params,
                std::vector<int32_t>& ids, std::vector<float>& logprobs) {
  const auto rows = static_cast<int64_t>(params.size());
  DeviceBuffer<float> d_logits(logits);
  DeviceBuffer<SamplingRow> d_params(params);
  DeviceBuffer<int32_t> d_ids(rows);
  DeviceBuffer<float> d_lp(rows);
  const size_t ws_bytes = sample_workspace_bytes(rows, n);
  DeviceBuffer<unsigned char> ws(ws_bytes);
  LAUNCH_OK(
      sample(d_logits.get(), rows, n, d_params.get(), d_ids.get(), d_lp.get(), ws.get(), ws_bytes, nullptr));
  ids = d_ids.download();
  logprobs = d_lp.download();
}

// `draws` draws of one row under `knobs`, seed fixed, offsets 0, 1, 2, ...: the row copied
// into a batch of `batch` rows, each with its own offset, launched until enough.
void draw_many(const std::vector<float>& row, const Knobs& knobs, int64_t draws, int64_t batch,
               std::vector<int32_t>& ids, std::vector<float>& logprobs) {
  const auto n = static_cast<int64_t>(row.size());
  batch = std::min(batch, draws);
  DeviceBuffer<float> d_logits(static_cast<size_t>(batch * n));
  for (int64_t r = 0; r < batch; ++r)
    CUDA_OK(cudaMemcpy(d_logits.get() + r * n, row.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  DeviceBuffer<SamplingRow> d_params(batch);
  DeviceBuffer<int32_t> d_ids(batch);
  DeviceBuffer<float> d_lp(batch);
  const size_t ws_bytes = sample_workspace_bytes(batch, n);
  DeviceBuffer<unsigned char> ws(ws_bytes);
  ids.clear();
  logprobs.clear();
  for (int64_t start = 0; start < draws; start += batch) {
    std::vector<SamplingRow> params;
    for (int64_t r = 0; r < batch; ++r)
      params.push_back(row_params(knobs, 0x5EEDull, static_cast<uint64_t>(start + r)));
    d_params.upload(params);
    d_ids.poison();
    LAUNCH_OK(sample(d_logits.get(), batch, n, d_params.get(), d_ids.get(), d_lp.get(), ws.get(), ws_bytes,
                     nullptr));
    const auto got = d_ids.download();
    const auto lp = d_lp.download();
    ids.insert(ids.end(), got.begin(), got.end());
    logprobs.insert(logprobs.end(), lp.begin(), lp.end());
  }
  ids.resize(static_cast<size_t>(draws));
  logprobs.resize(static_cast<size_t>(draws));
}

// Upper (1 - ~2e-8) quantile of chi-square with df degrees of freedom (Wilson-Hilferty, z = 5.5):
// a right sampler fails it about once in 50 million checks.
double chi2_bound(int df) {
  const double z = 5.5, a = 2.0 / (9.0 * df);
  return df * std::pow(1.0 - a + z * std::sqrt(a), 3.0);
}

// Checks `ids` (drawn with `knobs` from `row`) against the CPU's surviving set and its
// probabilities: every id in the set; every token expected >= 30 times seen; chi-square of
// the counts (tokens expected < 5 times pooled) under chi2_bound. Also each draw's logprob
// against cpu::token_logprobs. Returns the chi-square statistic over its bound (< 1 passes).
double check_draws(const std::vector<float>& row, const Knobs& knobs, const std::vector<int32_t>& ids,
                   const std::vector<float>& logprobs) {
  const auto n = static_cast<int64_t>(row.size());
  const auto dist = cpu::filtered_distribution(row.data(), n, cpu_params(knobs));
  std::map<int32_t, double> prob;
  for (auto [id, pr] : dist) prob[id] = pr;
  std::map<int32_t, int64_t> count;
  // cpu::token_logprobs is l - log Z with log Z in double: take log Z from it once (an O(n)
  // call per drawn id would be minutes at n = 152K).
  const int32_t first = ids.empty() ? 0 : ids[0];
  const float first_logprob = cpu::token_logprobs(row.data(), n, first, 0).logprob;
  const double log_z =
      static_cast<double>(row[static_cast<size_t>(first)]) - static_cast<double>(first_logprob);
  for (size_t d = 0; d < ids.size(); ++d) {
    const int32_t id = ids[d];
    if (!prob.count(id)) {
      ADD_FAILURE() << "drew " << id << " (logit " << (id >= 0 && id < n ? row[static_cast<size_t>(id)] : NAN)
                    << "), not in the CPU's surviving set of " << prob.size();
      return INFINITY;
    }
    ++count[id];
    const float want = id == first
                           ? first_logprob
                           : static_cast<float>(static_cast<double>(row[static_cast<size_t>(id)]) - log_z);
    if (!(std::abs(logprobs[d] - want) <= 1e-5f)) {
      ADD_FAILURE() << "logprob of " << id << ": " << logprobs[d] << ", CPU " << want;
      return INFINITY;
    }
  }
  const double draws = static_cast<double>(ids.size());
  double chi2 = 0, pooled_expected = 0;
  int64_t pooled_count = 0;
  int bins = 0;
  for (auto [id, pr] : prob) {
    const double expected = pr * draws;
    const int64_t seen = count.count(id) ? count[id] : 0;
    if (expected >= 30)
      EXPECT_GT(seen, 0) << "token " << id << " expected " << expected << " times, never drawn";
    if (expected < 5) {
      pooled_expected += expected;
      pooled_count += seen;
      continue;
    }
    chi2 += (seen - expected) * (seen - expected) / expected;
    ++bins;
  }
  if (pooled_expected > 0) {
    chi2 += (pooled_count - pooled_expected) * (pooled_count - pooled_expected) / pooled_expected;
    ++bins;
  }
  if (bins < 2) return 0;  // one outcome: membership said it all
  const double bound = chi2_bound(bins - 1);
  EXPECT_LT(chi2, bound) << "chi-square " << chi2 << " over " << bins - 1 << " df";
  return chi2 / bound;
}

std::vector<float> normal_row(Rng& rng, int64_t n, float std) { return rng.f32(static_cast<size_t>(n), std); }

// LLM-like: a bulk of N(0, 1) and a few dozen confident tokens well above it.
std::vector<float> peaked_row(Rng& rng, int64_t n) {
  auto row = rng.f32(static_cast<size_t>(n), 1.0f);
  for (int s = 0; s < 64 && s < n; ++s)
    row[static_cast<size_t>(rng.uniform(0, n - 1))] =
        4.0f + 6.0f * static_cast<float>(rng.uniform(0, 1000)) / 1000.0f;
  return row;
}

class SampleVsCpu : public ::testing::TestWithParam<int64_t> {};

TEST_P(SampleVsCpu, DrawsTheCpuSetWithItsProbabilities) {
  const int64_t n = GetParam();
  Rng rng;
  SCOPED_TRACE("seed " + std::to_string(rng.seed));
  // The kernel takes top-k <= 1024 and most nuclei from a short candidate list, the rest (big_k,
  // flat nuclei, overflowing lists) over the whole row: the cases cover both.
  const int32_t big_k =
      static_cast<int32_t>(std::min<int64_t>(n - 1, 6000));  // > the gather capacity at 152K
  const std::vector<Knobs> cases = {
      {1.0f, -1, 1.0f, 0.0f},    {0.7f, 5, 1.0f, 0.0f},    {1.3f, -1, 0.8f, 0.0f},
      {1.0f, 50, 0.9f, 0.0f},    {0.9f, -1, 1.0f, 0.1f},   {1.0f, 20, 0.7f, 0.05f},
      {2.0f, big_k, 1.0f, 0.0f}, {1.0f, -1, 0.999f, 0.0f}, {0.5f, big_k, 0.95f, 0.0f},
      {1.0f, 1, 1.0f, 0.0f},     {0.3f, -1, 0.5f, 0.2f},   {0.7f, -1, 0.9f, 0.0f},
      {1.0f, 1024, 1.0f, 0.0f},  {1.0f, 1025, 0.9f, 0.0f},
  };
  const bool large = n > 100000;
  const int64_t draws = large ? 10240 : 102400, batch = large ? 256 : 2048;
  const auto row = large ? peaked_row(rng, n) : normal_row(rng, n, 2.0f);
  for (const Knobs& k : cases) {
    SCOPED_TRACE(describe(k, n));
    std::vector<int32_t> ids;
    std::vector<float> lps;
    draw_many(row, k, draws, batch, ids, lps);
    check_draws(row, k, ids, lps);
  }
}

INSTANTIATE_TEST_SUITE_P(Vocab, SampleVsCpu, ::testing::Values(1, 7, 1000, 151936));

// A large vocabulary where 20,000 tokens share one logit and the top-p cut falls among them:
// the cut is then decided by token id (ties to the lower id), past the value bits of the
// radix select, over more tokens than fit in shared memory.
TEST(Sample, TopPCutInsideAHugeTie) {
  Rng rng;
  SCOPED_TRACE("seed " + std::to_string(rng.seed));
  const int64_t n = 151936;
  std::vector<float> row = rng.f32(static_cast<size_t>(n), 1.0f);
  for (auto& x : row) x -= 6.0f;
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  std::shuffle(order.begin(), order.end(), rng.gen);
  for (int i = 0; i < 20000; ++i) row[static_cast<size_t>(order[static_cast<size_t>(i)])] = 1.0f;
  for (int i = 20000; i < 20010; ++i) row[static_cast<size_t>(order[static_cast<size_t>(i)])] = 8.0f;
  // top-p alone and after top-k cut inside the tie; top-k alone whose k-th logit is the tie keeps all of it.
  for (const Knobs& k :
       {Knobs{1.0f, -1, 0.5f, 0.0f}, Knobs{1.0f, 15000, 0.6f, 0.0f}, Knobs{1.0f, 10005, 1.0f, 0.0f}}) {
    SCOPED_TRACE(describe(k, n));
    const auto dist = cpu::filtered_distribution(row.data(), n, cpu_params(k));
    if (k.top_p < 1.0f) {
      ASSERT_GT(dist.size(), 10u + 4096u);
      ASSERT_LT(dist.size(), 20010u);
    } else {
      ASSERT_EQ(dist.size(), 20010u);
    }
    std::vector<int32_t> ids;
    std::vector<float> lps;
    draw_many(row, k, 10240, 256, ids, lps);
    check_draws(row, k, ids, lps);
  }
}

// top-k keeps every token tied with the k-th logit; top-p then ranks those ties by id.
TEST(Sample, TiesAtTheKthLogitAreKept) {
  Rng rng;
  SCOPED_TRACE("seed " + std::to_string(rng.seed));
  const int64_t n = 1000;
  std::vector<float> row = rng.f32(static_cast<size_t>(n), 0.5f);
  for (auto& x : row) x = std::min(x, 1.5f);
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  std::shuffle(order.begin(), order.end(), rng.gen);
  row[static_cast<size_t>(order[0])] = 3.0f;
  row[static_cast<size_t>(order[1])] = 2.5f;
  std::vector<int32_t> tied;
  for (int i = 2; i < 8; ++i) {
    row[static_cast<size_t>(order[static_cast<size_t>(i)])] = 2.0f;
    tied.push_back(static_cast<int32_t>(order[static_cast<size_t>(i)]));
  }
  std::sort(tied.begin(), tied.end());
  const Knobs top3{1.0f, 3, 1.0f, 0.0f};
  ASSERT_EQ(cpu::filtered_distribution(row.data(), n, cpu_params(top3)).size(), 8u);
  std::vector<int32_t> ids;
  std::vector<float> lps;
  draw_many(row, top3, 20000, 2048, ids, lps);
  check_draws(row, top3, ids, lps);
  for (int32_t t : tied) EXPECT_NE(std::find(ids.begin(), ids.end(), t), ids.end()) << "tied token " << t;
  // A nucleus that ends in the middle of the tie: the lowest three tied ids survive.
  const double w3 = 1.0, w25 = std::exp(-0.5), w2 = std::exp(-1.0);
  const float top_p = static_cast<float>((w3 + w25 + 2.5 * w2) / (w3 + w25 + 6 * w2));
  const Knobs nucleus{1.0f, 3, top_p, 0.0f};
  const auto dist = cpu::filtered_distribution(row.data(), n, cpu_params(nucleus));
  ASSERT_EQ(dist.size(), 5u);
  draw_many(row, nucleus, 20000, 2048, ids, lps);
  check_draws(row, nucleus, ids, lps);
  std::set<int32_t> seen(ids.begin(), ids.end());
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(seen.count(tied[static_cast<size_t>(i)]), i < 3 ? 1u : 0u) << "tied " << i;
}

TEST(Sample, GreedyIsArgmax) {
  Rng rng;
  SCOPED_TRACE("seed " + std::to_string(rng.seed));
  for (int64_t n : {1, 7, 1000, 151936}) {
    const int64_t rows = 24;
    std::vector<float> logits;
    std::vector<SamplingRow> params;
    for (int64_t r = 0; r < rows; ++r) {
      auto row = normal_row(rng, n, 3.0f);
      if (n > 1 && r % 6 == 0) {  // a tie for the max on a temperature-0 row: the lower id wins
        // (top_k 1 keeps ties with the k-th, so a tie there is a draw, not argmax)
        const int64_t a = rng.uniform(0, n - 1), b = rng.uniform(0, n - 1);
        row[static_cast<size_t>(a)] = row[static_cast<size_t>(b)] = 20.0f;
      }
      logits.insert(logits.end(), row.begin(), row.end());
      // temperature 0 whatever the filters say; or top_k 1 at any temperature
      params.push_back(r % 2 == 0
                           ? row_params(Knobs{0.0f, static_cast<int32_t>(r % 5), 0.5f, 0.3f}, r, r)
                           : row_params(Knobs{0.1f + 0.3f * static_cast<float>(r), 1, 1.0f, 0.0f}, r, r));
    }
    std::vector<int32_t> ids;
    std::vector<float> lps;
    run_sample(logits, n, params, ids, lps);
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = logits.data() + r * n;
      const int32_t want = cpu::argmax(row, n);
      EXPECT_EQ(ids[static_cast<size_t>(r)], want) << "n " << n << " row " << r;
      EXPECT_NEAR(lps[static_cast<size_t>(r)], cpu::token_logprobs(row, n, want, 0).logprob, 1e-5)
          << "n " << n << " row " << r;
    }
  }
}

// A row's draw depends on its logits, params, seed and offset only: not on its place in the
// batch nor on the other rows; the same launch twice gives the same ids; offsets move the stream.
TEST(Sample, DrawIsIndependentOfTheBatch) {
  Rng rng;
  SCOPED_TRACE("seed " + std::to_string(rng.seed));
  const int64_t n = 1000, rows = 48;
  const std::vector<Knobs> knobs = {{1.0f, -1, 1.0f, 0.0f}, {0.8f, 40, 0.9f, 0.0f}, {1.5f, -1, 0.7f, 0.02f}};
  std::vector<std::vector<float>> row(rows);
  std::vector<SamplingRow> params;
  for (int64_t r = 0; r < rows; ++r) {
    row[static_cast<size_t>(r)] = normal_row(rng, n, 1.5f);
    params.push_back(
        row_params(knobs[static_cast<size_t>(r) % knobs.size()], 1000 + r % 5, static_cast<uint64_t>(r / 5)));
  }
  auto flat = [&](const std::vector<int64_t>& which, std::vector<SamplingRow>& ps) {
    std::vector<float> l;
    ps.clear();
    for (int64_t w : which) {
      l.insert(l.end(), row[static_cast<size_t>(w)].begin(), row[static_cast<size_t>(w)].end());
      ps.push_back(params[static_cast<size_t>(w)]);
    }
    return l;
  };
  std::vector<int64_t> in_order(rows);
  for (int64_t r = 0; r < rows; ++r) in_order[static_cast<size_t>(r)] = r;
  std::vector<SamplingRow> ps;
  std::vector<int32_t> a, again, b;
  std::vector<float> lp;
  const auto la = flat(in_order, ps);
  run_sample(la, n, ps, a, lp);
  run_sample(la, n, ps, again, lp);
  EXPECT_EQ(a, again);
  // Reversed, every other row dropped, the rest sampled twice at different positions.
  std::vector<int64_t> mixed;
  for (int64_t r = rows - 1; r >= 0; r -= 2) mixed.push_back(r);
  for (int64_t r = 1; r < rows; r += 2) mixed.push_back(r);
  const auto lb = flat(mixed, ps);
  run_sample(lb, n, ps, b, lp);
  for (size_t j = 0; j < mixed.size(); ++j)
    EXPECT_EQ(b[j], a[static_cast<size_t>(mixed[j])]) << "row " << mixed[j] << " at position " << j;
  // The same row at 64 offsets does not give one id every time.
  std::vector<int32_t> ids;
  std::vector<float> lps;
  draw_many(row[0], knobs[0], 64, 64, ids, lps);
  EXPECT_GT(std::set<int32_t>(ids.begin(), ids.end()).size(), 8u);
}

// -inf and NaN logits are never drawn, at any temperature and with any filter.
TEST(Sample, NonFiniteLogitsAreNeverDrawn) {
  Rng rng;
  SCOPED_TRACE("seed " + std::to_string(rng.seed));
  const int64_t n = 1000;
  auto row = normal_row(rng, n, 2.0f);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t u = rng.uniform(0, 9);
    if (u < 3)
      row[static_cast<size_t>(i)] = -kInf;
    else if (u == 3)
      row[static_cast<size_t>(i)] = NAN;
  }
  row[static_cast<size_t>(cpu::argmax(row.data(), n))] = NAN;  // where the max was
  for (const Knobs& k :
       {Knobs{5.0f, -1, 1.0f, 0.0f}, Knobs{1.0f, 700, 1.0f, 0.0f}, Knobs{2.0f, -1, 0.95f, 0.0f}}) {
    SCOPED_TRACE(describe(k, n));
    std::vector<int32_t> ids;
    std::vector<float> lps;
    draw_many(row, k, 20480, 2048, ids, lps);
    for (int32_t id : ids) ASSERT_TRUE(std::isfinite(row[static_cast<size_t>(id)])) << "drew " << id;
    check_draws(row, k, ids, lps);
  }
  // One finite logit left: always it. None left: token 0 (the greedy answer) with logprob -inf.
  std::vector<float> one(static_cast<size_t>(n), -kInf), none(static_cast<size_t>(n), -kInf);
  for (int64_t i = 0; i < n; i += 7) none[static_cast<size_t>(i)] = NAN;
  one[777] = -3.0f;
  std::vector<float> both = one;
  both.insert(both.end(), none.begin(), none.end());
  std::vector<int32_t> ids;
  std::vector<float> lps;
  const Knobs hot{3.0f, 10, 0.5f, 0.5f};
  run_sample(both, n, {row_params(hot, 1, 2), row_params(hot, 1, 2)}, ids, lps);
  EXPECT_EQ(ids[0], 777);
  EXPECT_NEAR(lps[0], 0.0f, 1e-6);
  EXPECT_EQ(ids[1], 0);
  EXPECT_EQ(lps[1], -kInf);
}

TEST(Sample, RejectsAVocabularyBeyondTheIdBits) {
  EXPECT_EQ(sample(nullptr, 1, int64_t{1} << 24, nullptr, nullptr, nullptr, nullptr, 0, nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(sample(nullptr, 0, 1000, nullptr, nullptr, nullptr, nullptr, 0, nullptr), cudaSuccess);
}

}  // namespace
}  // namespace longctx::cuda::test
