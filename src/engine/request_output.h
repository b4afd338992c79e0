// What the engine streams back: per sequence (a request with n > 1 has n of them),
// the tokens and text produced since the last output, and how it ended.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "sched/request.h"

namespace longctx {

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;  // top-k alternatives, best first
};

struct RequestOutput {
  RequestId request_id = 0;  // as returned by add_request
  int64_t index = 0;         // which of the n continuations
  std::vector<int32_t> new_token_ids;
  std::string text;  // new text (complete UTF-8; held back while it may start a stop string)
  std::vector<TokenLogprob> logprobs;  // one per new token, when requested
  bool finished = false;
  std::string finish_reason;  // "stop" | "length" | "abort"
  // vLLM's stop_reason: the stop string or stop token id that ended it; unset for EOS/length.
  std::variant<std::monostate, std::string, int32_t> stop_reason;
  int64_t num_prompt_tokens = 0;
  int64_t num_cached_tokens = 0;  // prefix-cache hit, known once scheduled
  // Sent once, with the first output: logprob of each prompt token (the first has none).
  std::optional<std::vector<std::optional<TokenLogprob>>> prompt_logprobs;
};

}  // namespace longctx
