#include "engine/generation_request.h"

namespace longctx {

Status validate(const GenerationRequest& r, const EngineLimits& limits) {
  if (r.prompt_token_ids.empty()) return invalid_argument("prompt: the prompt is empty (at least one token is needed)");
  if (r.max_tokens < 1) return invalid_argument("max_tokens must be >= 1, got " + std::to_string(r.max_tokens));
  if (r.min_tokens < 0 || r.min_tokens > r.max_tokens)
    return invalid_argument("min_tokens must be in [0, max_tokens], got " + std::to_string(r.min_tokens));
  if (r.n < 1 || r.n > limits.max_n)
    return invalid_argument("n must be in [1, " + std::to_string(limits.max_n) + "], got " + std::to_string(r.n));
  if (static_cast<int64_t>(r.stop.size()) > limits.max_stop_strings)
    return invalid_argument("stop: at most " + std::to_string(limits.max_stop_strings) + " stop strings, got " +
                            std::to_string(r.stop.size()));
  for (const std::string& s : r.stop) {
    if (s.empty()) return invalid_argument("stop: a stop string is empty");
    if (static_cast<int64_t>(s.size()) > limits.max_stop_string_bytes)
      return invalid_argument("stop: a stop string is longer than " + std::to_string(limits.max_stop_string_bytes) +
                              " bytes");
  }
  if (r.prompt_logprobs < -1 || r.prompt_logprobs > cpu::kMaxLogprobs)
    return invalid_argument("prompt_logprobs must be in [0, " + std::to_string(cpu::kMaxLogprobs) + "], got " +
                            std::to_string(r.prompt_logprobs));
  return cpu::validate(r.sampling);
}

}  // namespace longctx
