// Token sampling with OpenAI/vLLM semantics, on one row of logits [vocab]. Order of
// operations (as vLLM's sampler):
//   1. penalties: repetition on prompt + output tokens, then frequency and presence on
//      output tokens;
//   2. banned tokens → -inf (e.g. EOS while below min_tokens);
//   3. temperature == 0: greedy (argmax, ties to the lowest id), no random draw;
//   4. temperature → top-k → top-p → min-p, then one draw from the renormalised
//      distribution with the request's own generator (a seeded request is reproducible).
// Ties follow HF/vLLM: top-k keeps every token whose logit equals the k-th largest;
// top-p and min-p see the tokens ranked by logit, ties to the lower id.
//
// Logprobs are the log-softmax of the logits after steps 1–2 and *before*
// temperature/top-k/top-p/min-p: what the model (with penalties) thinks, not what the
// filters kept, like vLLM's default "raw_logprobs" (which vLLM takes before penalties;
// we take them after, so the reported logprob matches the row the token came from).
// Banned tokens report -inf.
//
// Logits should be finite or -inf; a NaN logit ranks as -inf and is never drawn.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <utility>
#include <vector>

#include "core/status.h"

namespace longctx::cpu {

// Most logprobs one request may ask for per position (as vLLM's default max_logprobs).
inline constexpr int32_t kMaxLogprobs = 20;

struct SamplingParams {
  float temperature = 1.0f;         // >= 0; 0 = greedy
  int32_t top_k = -1;               // -1 or 0 = off; k >= 1: the k most likely (and ties)
  float top_p = 1.0f;               // (0, 1]: the smallest set with mass >= top_p
  float min_p = 0.0f;               // [0, 1]: drop tokens with prob < min_p × max prob
  float repetition_penalty = 1.0f;  // > 0; tokens seen in prompt or output: l > 0 ? l / p : l * p
  float presence_penalty = 0.0f;    // [-2, 2]: subtracted once from tokens in the output
  float frequency_penalty = 0.0f;   // [-2, 2]: subtracted count times from tokens in the output
  std::optional<uint64_t> seed;     // per-request stream; unset: the engine's (see Sampler)
  int32_t logprobs = -1;            // -1 none; k in [0, kMaxLogprobs]: the sampled token's and the top k
};

// OK, or InvalidArgument naming the field, the allowed range and the value given,
// e.g. "top_p must be in (0, 1], got 1.5".
Status validate(const SamplingParams& p);

// Index of the largest logit; ties go to the lowest index (as torch.argmax).
int32_t argmax(const float* logits, int64_t n);

// Step 1, in place: repetition penalty on tokens of prompt ∪ output (once per token),
// then logit -= frequency_penalty × count and -= presence_penalty for output tokens
// (vLLM's arithmetic, in vLLM's order). Ids outside [0, n) are ignored.
void apply_penalties(float* logits, int64_t n, const SamplingParams& p,
                     std::span<const int32_t> prompt_tokens, std::span<const int32_t> output_tokens);

// Steps 3–4 without the draw, for temperature > 0: the tokens that survive
// temperature → top-k → top-p → min-p and their renormalised probabilities (summing
// to 1), in no promised order. What sample() draws from; for tests and "processed"
// logprobs. An all -inf row gives {(argmax, 1)}. Cost: O(vocab) passes plus a sort of
// the top-k set, or of one narrow probability bucket for top-p without top-k.
std::vector<std::pair<int32_t, float>> filtered_distribution(const float* logits, int64_t n,
                                                             const SamplingParams& p);

struct TokenLogprobs {
  float logprob = 0;                                    // of the asked token
  std::vector<std::pair<int32_t, float>> top_logprobs;  // best first, ties to the lower id
};
// log-softmax of the row: the logprob of `token` and the min(k, n) best (k <= 0: none).
// One pass with a k-sized heap: no sort of the row. Used for sampled and prompt logprobs.
TokenLogprobs token_logprobs(const float* logits, int64_t n, int32_t token, int32_t k);

// Owns one sequence's random stream: one instance per sequence, used by one thread at a time.
class Sampler {
 public:
  // `seed` starts the stream. The engine derives it: params.seed (or, unset, its own
  // seed) plus the continuation index, so the n > 1 continuations of a seeded request
  // differ from each other and are each reproducible (as vLLM v1's seed + index).
  Sampler(const SamplingParams& p, uint64_t seed) : p_(p), rng_(seed) {}

  struct Sample {
    int32_t token = 0;
    float logprob = 0;  // set when params.logprobs >= 0
    std::vector<std::pair<int32_t, float>> top_logprobs;
  };
  // Applies steps 1–2 to `logits` in place (the row is left penalised and masked), then
  // samples. A row with every token banned or -inf gives token 0 with logprob -inf.
  Sample sample(float* logits, int64_t n, std::span<const int32_t> prompt_tokens,
                std::span<const int32_t> output_tokens, std::span<const int32_t> banned_tokens = {});

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
};

// Samples from softmax(logits / temperature); temperature <= 0 is greedy. The same
// stream as a Sampler with default params but `temperature` and no penalties.
int32_t sample_with_temperature(const float* logits, int64_t n, float temperature, std::mt19937_64& rng);

}  // namespace longctx::cpu
