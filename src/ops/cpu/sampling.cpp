#include "ops/cpu/sampling.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

namespace longctx::cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Shortest text that reads back as `v` ("1.5", not "1.500000").
std::string num(float v) {
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, res.ptr);
}

// Uniform double in [0, 1) from 53 random bits: one generator call per draw.
double uniform(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// A NaN logit ranks as -inf, so a broken row cannot break the strict weak ordering the
// heaps and sorts below rely on.
float rank_key(float x) { return std::isnan(x) ? kNegInf : x; }

// Rank order of argmax, top-k, top-p and top logprobs: higher logit first, ties to the lower id.
struct RanksAbove {
  const float* logits;
  bool operator()(int32_t a, int32_t b) const {
    const float x = rank_key(logits[a]), y = rank_key(logits[b]);
    return x != y ? x > y : a < b;
  }
};

// The min(k, n) best ids in rank order, without sorting the row when k is small.
std::vector<int32_t> top_ids(const float* logits, int64_t n, int64_t k) {
  k = std::min(k, n);
  std::vector<int32_t> ids;
  if (k <= 0) return ids;
  const RanksAbove above{logits};
  if (k * 4 <= n) {
    // A k-sized heap whose front is the worst id kept: most ids cost one comparison with
    // it, so this is O(n) plus O(k log k · log(n / k)) expected heap work.
    ids.reserve(static_cast<size_t>(k));
    for (int64_t i = 0; i < n; ++i) {
      const auto id = static_cast<int32_t>(i);
      if (static_cast<int64_t>(ids.size()) < k) {
        ids.push_back(id);
        std::push_heap(ids.begin(), ids.end(), above);
      } else if (above(id, ids.front())) {
        std::pop_heap(ids.begin(), ids.end(), above);
        ids.back() = id;
        std::push_heap(ids.begin(), ids.end(), above);
      }
    }
    std::sort_heap(ids.begin(), ids.end(), above);
    return ids;
  }
  ids.resize(static_cast<size_t>(n));
  std::iota(ids.begin(), ids.end(), 0);
  if (k < n) std::nth_element(ids.begin(), ids.begin() + (k - 1), ids.end(), above);
  ids.resize(static_cast<size_t>(k));
  std::sort(ids.begin(), ids.end(), above);
  return ids;
}

// Unnormalised probability at temperature T relative to the most likely token:
// exp((l - max) / T) in [0, 1], exactly 1 for the max; 0 for -inf and NaN. Relative to
// the max, min-p is a plain threshold on it and nothing overflows for tiny T.
struct Weight {
  float max_logit;
  float inv_t;
  float operator()(float l) const {
    if (l == max_logit) return 1.0f;
    const float d = (l - max_logit) * inv_t;
    return d >= -104.0f ? std::exp(d) : 0.0f;  // below e^-104 a float is 0; NaN fails the test
  }
};

// What a draw picks from: ids (empty: every id of the row, in order) and their weights.
struct Candidates {
  std::vector<int32_t> ids;
  std::vector<float> weights;
  int32_t id(size_t i) const { return ids.empty() ? static_cast<int32_t>(i) : ids[i]; }
};

// Smallest ranked prefix whose weight reaches `target` (>= 1 token); the whole list
// when rounding keeps the sum below it. `reached` says which.
size_t nucleus_size(const std::vector<float>& w, double target, bool& reached) {
  double cum = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    cum += w[i];
    if (cum >= target) {
      reached = true;
      return i + 1;
    }
  }
  reached = false;
  return w.size();
}

// top-p over a whole row without sorting it. A float's bits, read as an integer, order
// non-negative floats, so the top 16 bits of a weight (exponent and 7 mantissa bits)
// bucket the tokens by rank. One pass sums the mass per bucket; walking the buckets
// down finds the one where the running mass crosses top_p × total. Every token above it
// is in the nucleus, and only that bucket is ranked to find the exact cut (a flat 150K
// row costs two passes and a sort of about 1/128 of it, where a full sort took ~100 ms).
void nucleus_without_sort(const float* logits, int64_t n, const Weight& weight, float top_p, Candidates& c) {
  std::vector<float> w(static_cast<size_t>(n));
  double mass = 0;
  for (int64_t i = 0; i < n; ++i) mass += w[static_cast<size_t>(i)] = weight(logits[i]);
  const double target = static_cast<double>(top_p) * mass;
  auto bucket = [](float x) { return std::bit_cast<uint32_t>(x) >> 16; };
  std::vector<double> bucket_mass(bucket(1.0f) + 1, 0.0);
  for (float x : w) bucket_mass[bucket(x)] += x;
  uint32_t edge = bucket(1.0f);  // the highest bucket whose mass and that above reach the target
  double above = 0;              // mass of the buckets above `edge`
  for (; edge > 0 && above + bucket_mass[edge] < target; --edge) above += bucket_mass[edge];
  std::vector<int32_t> edge_ids;
  for (int64_t i = 0; i < n; ++i) {
    const float x = w[static_cast<size_t>(i)];
    const uint32_t b = bucket(x);
    if (b > edge) {
      c.ids.push_back(static_cast<int32_t>(i));
      c.weights.push_back(x);
    } else if (b == edge && x > 0.0f) {
      edge_ids.push_back(static_cast<int32_t>(i));
    }
  }
  std::sort(edge_ids.begin(), edge_ids.end(), RanksAbove{logits});
  for (int32_t id : edge_ids) {  // the smallest ranked prefix of the edge bucket that reaches the target
    if (above >= target) break;
    c.ids.push_back(id);
    c.weights.push_back(w[static_cast<size_t>(id)]);
    above += w[static_cast<size_t>(id)];
  }
}

// temperature → top-k → top-p → min-p (temperature > 0).
Candidates filter(const float* logits, int64_t n, const SamplingParams& p) {
  Candidates c;
  const int32_t best = argmax(logits, n);
  const float max_logit = rank_key(logits[best]);
  if (max_logit == kNegInf) {  // nothing left to sample: the greedy answer, deterministically
    c.ids = {best};
    c.weights = {1.0f};
    return c;
  }
  const Weight weight{max_logit, 1.0f / p.temperature};
  const bool use_top_k = p.top_k > 0 && p.top_k < n;
  const bool use_top_p = p.top_p < 1.0f;

  if (!use_top_k && !use_top_p) {
    // Nothing ranks the row: keep it in id order, min-p being a threshold on the weight.
    if (p.min_p <= 0.0f) {
      c.weights.resize(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) c.weights[static_cast<size_t>(i)] = weight(logits[i]);
      return c;
    }
    for (int64_t i = 0; i < n; ++i) {
      const float w = weight(logits[i]);
      if (w >= p.min_p) {
        c.ids.push_back(static_cast<int32_t>(i));
        c.weights.push_back(w);
      }
    }
    return c;
  }

  if (use_top_k) {
    c.ids = top_ids(logits, n, p.top_k);
    // HF and vLLM mask logits < the k-th largest, keeping ties with it; in rank order
    // those ties come after the k-th id, so they have higher ids.
    const int32_t kth = c.ids.back();
    if (rank_key(logits[kth]) > kNegInf)
      for (int64_t i = kth + 1; i < n; ++i)
        if (logits[i] == logits[kth]) c.ids.push_back(static_cast<int32_t>(i));
    c.weights.resize(c.ids.size());
    double mass = 0;
    for (size_t i = 0; i < c.ids.size(); ++i) mass += c.weights[i] = weight(logits[c.ids[i]]);
    if (use_top_p) {  // the candidates are ranked: the nucleus is a prefix
      bool reached = false;
      const size_t keep = nucleus_size(c.weights, static_cast<double>(p.top_p) * mass, reached);
      c.ids.resize(keep);
      c.weights.resize(keep);
    }
  } else {
    nucleus_without_sort(logits, n, weight, p.top_p, c);
  }

  if (p.min_p > 0.0f) {  // weights are prob / max prob: min-p is a threshold on them
    size_t kept = 0;
    for (size_t i = 0; i < c.weights.size(); ++i)
      if (c.weights[i] >= p.min_p) {
        c.ids[kept] = c.ids[i];
        c.weights[kept++] = c.weights[i];
      }
    c.ids.resize(kept);
    c.weights.resize(kept);
  }
  return c;
}

// Inverse-CDF draw with one uniform; the list always holds a weight-1 token.
int32_t draw(const Candidates& c, std::mt19937_64& rng) {
  double total = 0;
  for (float w : c.weights) total += w;
  const double u = uniform(rng) * total;
  double cum = 0;
  size_t last = 0;
  for (size_t i = 0; i < c.weights.size(); ++i) {
    if (c.weights[i] <= 0.0f) continue;
    cum += c.weights[i];
    last = i;
    if (u < cum) return c.id(i);
  }
  return c.id(last);  // rounding left u at the very top: the last token with weight
}

}  // namespace

Status validate(const SamplingParams& p) {
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature))
    return invalid_argument("temperature must be >= 0 (0 = greedy), got " + num(p.temperature));
  if (p.top_k < -1)
    return invalid_argument("top_k must be >= 1, or -1 or 0 for no top-k, got " + std::to_string(p.top_k));
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f))
    return invalid_argument("top_p must be in (0, 1], got " + num(p.top_p));
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f))
    return invalid_argument("min_p must be in [0, 1], got " + num(p.min_p));
  if (!(p.repetition_penalty > 0.0f) || !std::isfinite(p.repetition_penalty))
    return invalid_argument("repetition_penalty must be > 0 (1 = off), got " + num(p.repetition_penalty));
  if (!(p.presence_penalty >= -2.0f && p.presence_penalty <= 2.0f))
    return invalid_argument("presence_penalty must be in [-2, 2], got " + num(p.presence_penalty));
  if (!(p.frequency_penalty >= -2.0f && p.frequency_penalty <= 2.0f))
    return invalid_argument("frequency_penalty must be in [-2, 2], got " + num(p.frequency_penalty));
  if (p.logprobs < -1 || p.logprobs > kMaxLogprobs)
    return invalid_argument("logprobs must be in [0, " + std::to_string(kMaxLogprobs) +
                            "] (or -1 for none), got " + std::to_string(p.logprobs));
  return Status::ok();
}

int32_t argmax(const float* logits, int64_t n) {
  int64_t best = 0;
  float best_logit = rank_key(logits[0]);
  for (int64_t i = 1; i < n; ++i) {
    const float l = rank_key(logits[i]);
    if (l > best_logit) {
      best = i;
      best_logit = l;
    }
  }
  return static_cast<int32_t>(best);
}

void apply_penalties(float* logits, int64_t n, const SamplingParams& p,
                     std::span<const int32_t> prompt_tokens, std::span<const int32_t> output_tokens) {
  if (p.repetition_penalty != 1.0f) {
    const float r = p.repetition_penalty;
    std::vector<uint8_t> seen(static_cast<size_t>(n),
                              0);  // a token in both prompt and output is penalised once
    for (auto tokens : {prompt_tokens, output_tokens})
      for (int32_t t : tokens) {
        if (t < 0 || t >= n || seen[static_cast<size_t>(t)]) continue;
        seen[static_cast<size_t>(t)] = 1;
        logits[t] = logits[t] > 0 ? logits[t] / r : logits[t] * r;
      }
  }
  if (p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f) {
    std::vector<int32_t> sorted(output_tokens.begin(), output_tokens.end());
    std::sort(sorted.begin(), sorted.end());
    for (size_t i = 0; i < sorted.size();) {
      size_t j = i;
      while (j < sorted.size() && sorted[j] == sorted[i]) ++j;
      const int32_t t = sorted[i];
      if (t >= 0 && t < n) {
        logits[t] -= p.frequency_penalty * static_cast<float>(j - i);
        logits[t] -= p.presence_penalty;
      }
      i = j;
    }
  }
}

std::vector<std::pair<int32_t, float>> filtered_distribution(const float* logits, int64_t n,
                                                             const SamplingParams& p) {
  const Candidates c = filter(logits, n, p);
  double total = 0;
  for (float w : c.weights) total += w;
  std::vector<std::pair<int32_t, float>> out;
  out.reserve(c.weights.size());
  for (size_t i = 0; i < c.weights.size(); ++i)
    out.emplace_back(c.id(i), static_cast<float>(c.weights[i] / total));
  return out;
}

TokenLogprobs token_logprobs(const float* logits, int64_t n, int32_t token, int32_t k) {
  const float max_logit = rank_key(logits[argmax(logits, n)]);
  TokenLogprobs out;
  const auto top = top_ids(logits, n, k);
  if (max_logit == kNegInf) {  // no finite logit: every logprob is -inf, not NaN
    out.logprob = kNegInf;
    for (int32_t id : top) out.top_logprobs.emplace_back(id, kNegInf);
    return out;
  }
  double sum = 0;  // float exps (all <= 1), double accumulation over the 150K terms
  for (int64_t i = 0; i < n; ++i) sum += std::exp(rank_key(logits[i]) - max_logit);
  const double log_z = static_cast<double>(max_logit) + std::log(sum);
  auto logprob = [&](int32_t id) {
    return static_cast<float>(static_cast<double>(rank_key(logits[id])) - log_z);
  };
  out.logprob = logprob(token);
  out.top_logprobs.reserve(top.size());
  for (int32_t id : top) out.top_logprobs.emplace_back(id, logprob(id));
  return out;
}

Sampler::Sample Sampler::sample(float* logits, int64_t n, std::span<const int32_t> prompt_tokens,
                                std::span<const int32_t> output_tokens,
                                std::span<const int32_t> banned_tokens) {
  apply_penalties(logits, n, p_, prompt_tokens, output_tokens);
  for (int32_t t : banned_tokens)
    if (t >= 0 && t < n) logits[t] = kNegInf;

  Sample out;
  out.token = p_.temperature == 0.0f ? argmax(logits, n) : draw(filter(logits, n, p_), rng_);
  if (p_.logprobs >= 0) {
    auto lp = token_logprobs(logits, n, out.token, p_.logprobs);
    out.logprob = lp.logprob;
    out.top_logprobs = std::move(lp.top_logprobs);
  }
  return out;
}

int32_t sample_with_temperature(const float* logits, int64_t n, float temperature, std::mt19937_64& rng) {
  if (temperature <= 0.0f) return argmax(logits, n);
  SamplingParams p;
  p.temperature = temperature;
  return draw(filter(logits, n, p), rng);
}

}  // namespace longctx::cpu
