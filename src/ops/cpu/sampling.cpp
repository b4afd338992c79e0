#include "ops/cpu/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <unordered_map>

namespace longctx::cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

std::string num(double v) {
  std::string s = std::to_string(v);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

// Uniform double in [0, 1) from 53 random bits.
double uniform(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

}  // namespace

Status validate(const SamplingParams& p) {
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature))
    return invalid_argument("temperature must be >= 0, got " + num(p.temperature));
  if (p.top_k < -1) return invalid_argument("top_k must be -1 (off) or >= 1, got " + std::to_string(p.top_k));
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) return invalid_argument("top_p must be in (0, 1], got " + num(p.top_p));
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) return invalid_argument("min_p must be in [0, 1], got " + num(p.min_p));
  if (!(p.repetition_penalty > 0.0f) || !std::isfinite(p.repetition_penalty))
    return invalid_argument("repetition_penalty must be > 0, got " + num(p.repetition_penalty));
  if (!(p.presence_penalty >= -2.0f && p.presence_penalty <= 2.0f))
    return invalid_argument("presence_penalty must be in [-2, 2], got " + num(p.presence_penalty));
  if (!(p.frequency_penalty >= -2.0f && p.frequency_penalty <= 2.0f))
    return invalid_argument("frequency_penalty must be in [-2, 2], got " + num(p.frequency_penalty));
  if (p.logprobs < -1 || p.logprobs > kMaxLogprobs)
    return invalid_argument("logprobs must be in [0, " + std::to_string(kMaxLogprobs) + "], got " +
                            std::to_string(p.logprobs));
  return Status::ok();
}

int32_t argmax(const float* logits, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<int32_t>(best);
}

TokenLogprobs token_logprobs(const float* logits, int64_t n, int32_t token, int32_t k) {
  const float mx = logits[argmax(logits, n)];
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  const double log_z = mx + std::log(sum);
  TokenLogprobs out;
  out.logprob = static_cast<float>(logits[token] - log_z);
  if (k > 0) {
    std::vector<int32_t> idx(static_cast<size_t>(n));
    std::iota(idx.begin(), idx.end(), 0);
    const auto kk = static_cast<size_t>(std::min<int64_t>(k, n));
    std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(kk), idx.end(), [&](int32_t a, int32_t b) {
      return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
    });
    for (size_t i = 0; i < kk; ++i) out.top_logprobs.emplace_back(idx[i], static_cast<float>(logits[idx[i]] - log_z));
  }
  return out;
}

Sampler::Sample Sampler::sample(float* logits, int64_t n, std::span<const int32_t> prompt_tokens,
                                std::span<const int32_t> output_tokens, std::span<const int32_t> banned_tokens) {
  // 1. Penalties.
  if (p_.repetition_penalty != 1.0f) {
    std::vector<bool> seen(static_cast<size_t>(n), false);
    for (auto span : {prompt_tokens, output_tokens})
      for (int32_t t : span)
        if (t >= 0 && t < n) seen[static_cast<size_t>(t)] = true;
    for (int64_t i = 0; i < n; ++i)
      if (seen[static_cast<size_t>(i)])
        logits[i] = logits[i] > 0 ? logits[i] / p_.repetition_penalty : logits[i] * p_.repetition_penalty;
  }
  if (p_.presence_penalty != 0.0f || p_.frequency_penalty != 0.0f) {
    std::unordered_map<int32_t, int32_t> counts;
    for (int32_t t : output_tokens) counts[t] += 1;
    for (const auto& [t, c] : counts)
      if (t >= 0 && t < n) logits[t] -= p_.frequency_penalty * static_cast<float>(c) + p_.presence_penalty;
  }
  for (int32_t t : banned_tokens)
    if (t >= 0 && t < n) logits[t] = kNegInf;

  Sample out;
  auto finish = [&](int32_t token) {
    out.token = token;
    if (p_.logprobs >= 0) {
      auto lp = token_logprobs(logits, n, token, p_.logprobs);
      out.logprob = lp.logprob;
      out.top_logprobs = std::move(lp.top_logprobs);
    }
    return out;
  };
  if (p_.temperature == 0.0f) return finish(argmax(logits, n));
  if ((p_.top_k <= 0 || p_.top_k >= n) && p_.top_p >= 1.0f && p_.min_p <= 0.0f)
    return finish(sample_with_temperature(logits, n, p_.temperature, rng_));  // no filter: no sort

  // 2. Candidates after top-k (partial sort), sorted by logit descending.
  std::vector<int32_t> cand(static_cast<size_t>(n));
  std::iota(cand.begin(), cand.end(), 0);
  auto better = [&](int32_t a, int32_t b) { return logits[a] != logits[b] ? logits[a] > logits[b] : a < b; };
  size_t keep = cand.size();
  if (p_.top_k > 0 && static_cast<int64_t>(p_.top_k) < n) keep = static_cast<size_t>(p_.top_k);
  std::partial_sort(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(keep), cand.end(), better);
  cand.resize(keep);

  // 3. Probabilities at temperature over the candidates.
  const double mx = logits[cand[0]];
  std::vector<double> prob(cand.size());
  double total = 0;
  for (size_t i = 0; i < cand.size(); ++i) {
    prob[i] = std::exp((static_cast<double>(logits[cand[i]]) - mx) / p_.temperature);
    total += prob[i];
  }
  for (double& q : prob) q /= total;
  // 4. top-p: the smallest prefix whose mass reaches top_p (at least one token).
  if (p_.top_p < 1.0f) {
    double cum = 0;
    size_t i = 0;
    for (; i < prob.size(); ++i) {
      cum += prob[i];
      if (cum >= p_.top_p) break;
    }
    prob.resize(std::min(prob.size(), i + 1));
  }
  // 5. min-p: drop tokens below min_p × the top probability.
  if (p_.min_p > 0.0f) {
    const double floor = p_.min_p * prob[0];
    size_t i = 1;
    while (i < prob.size() && prob[i] >= floor) ++i;
    prob.resize(i);
  }
  // 6. Draw.
  double mass = 0;
  for (double q : prob) mass += q;
  double u = uniform(rng_) * mass;
  for (size_t i = 0; i < prob.size(); ++i) {
    if (u < prob[i]) return finish(cand[i]);
    u -= prob[i];
  }
  return finish(cand[prob.size() - 1]);
}

int32_t sample_with_temperature(const float* logits, int64_t n, float temperature, std::mt19937_64& rng) {
  if (temperature <= 0.0f) return argmax(logits, n);
  const float mx = logits[argmax(logits, n)];
  std::vector<double> cumulative(static_cast<size_t>(n));
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    total += std::exp(static_cast<double>(logits[i] - mx) / temperature);
    cumulative[static_cast<size_t>(i)] = total;
  }
  const double u = uniform(rng) * total;
  for (int64_t i = 0; i < n; ++i)
    if (u < cumulative[static_cast<size_t>(i)]) return static_cast<int32_t>(i);
  return static_cast<int32_t>(n - 1);
}

}  // namespace longctx::cpu
