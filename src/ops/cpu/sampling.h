// Token sampling with OpenAI/vLLM semantics, on one row of logits. Order of operations
// (as vLLM): penalties → banned tokens → greedy if temperature == 0 → temperature →
// top-k → top-p → min-p → draw from the renormalised distribution with the request's
// own generator (a seeded request is reproducible).
//
// Logprobs are those of the penalised logits *before* temperature/top-k/top-p/min-p
// (vLLM's default "raw" logprobs): what the model thinks, not what the filters kept.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <utility>
#include <vector>

#include "core/status.h"

namespace longctx::cpu {

inline constexpr int32_t kMaxLogprobs = 20;

struct SamplingParams {
  float temperature = 1.0f;         // 0 = greedy
  int32_t top_k = -1;               // -1 or 0 = off
  float top_p = 1.0f;               // (0, 1]
  float min_p = 0.0f;               // [0, 1]
  float repetition_penalty = 1.0f;  // > 0; tokens seen in prompt or output: l > 0 ? l / p : l * p
  float presence_penalty = 0.0f;    // [-2, 2]: subtracted once from tokens in the output
  float frequency_penalty = 0.0f;   // [-2, 2]: subtracted count times from tokens in the output
  std::optional<uint64_t> seed;     // per-request stream; unset: the engine's
  int32_t logprobs = -1;            // -1 none; k >= 0: the sampled token's logprob and the top k
};

// InvalidArgument naming the field and the allowed range.
Status validate(const SamplingParams& p);

// Index of the largest logit; ties go to the lowest index (as torch.argmax).
int32_t argmax(const float* logits, int64_t n);

struct TokenLogprobs {
  float logprob = 0;  // of the asked token
  std::vector<std::pair<int32_t, float>> top_logprobs;  // best first
};
// log-softmax of the row: the logprob of `token` and the k best (k <= 0: none).
TokenLogprobs token_logprobs(const float* logits, int64_t n, int32_t token, int32_t k);

class Sampler {
 public:
  // `seed` starts this sampler's stream; the engine derives it from params.seed (and the
  // continuation index for n > 1), or from its own seed when the request has none.
  Sampler(const SamplingParams& p, uint64_t seed) : p_(p), rng_(seed) {}

  struct Sample {
    int32_t token = 0;
    float logprob = 0;
    std::vector<std::pair<int32_t, float>> top_logprobs;
  };
  // Modifies `logits` in place (penalties, masking).
  Sample sample(float* logits, int64_t n, std::span<const int32_t> prompt_tokens,
                std::span<const int32_t> output_tokens, std::span<const int32_t> banned_tokens = {});

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
};

// Samples from softmax(logits / temperature); temperature <= 0 is greedy.
int32_t sample_with_temperature(const float* logits, int64_t n, float temperature, std::mt19937_64& rng);

}  // namespace longctx::cpu
