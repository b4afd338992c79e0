// OpenAI response bodies: completions and chat completions, whole or as stream chunks,
// logprobs in each API's shape, usage with prompt_tokens_details.cached_tokens, and
// vLLM's additions (stop_reason; prompt_token_ids/token_ids with return_token_ids).
// Server-Sent Events framing is here too: "data: <json>\n\n", ending "data: [DONE]\n\n".
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/request_output.h"
#include "server/openai_request.h"
#include "text/tokenizer.h"

namespace longctx::server {

// One choice as it accumulates (choice index = prompt index · n + continuation index).
struct ChoiceState {
  int64_t prompt_index = 0;
  std::vector<int32_t> token_ids;
  std::string text;
  std::vector<TokenLogprob> logprobs;
  std::optional<std::vector<std::optional<TokenLogprob>>> prompt_logprobs;
  bool finished = false;
  std::string finish_reason;
  std::variant<std::monostate, std::string, int32_t> stop_reason;
};

struct UsageCounts {
  int64_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
};

class ResponseFormatter {
 public:
  ResponseFormatter(const OpenAIRequest& req, std::string model_name, const Tokenizer* tokenizer);

  nlohmann::ordered_json response(const std::vector<ChoiceState>& choices, const UsageCounts& usage) const;
  // A stream chunk for new output of one choice; `first` marks the choice's first chunk
  // (chat's role delta, echo's prompt, prompt_token_ids). `text_before`: bytes of text
  // the choice streamed already (completions' text_offset).
  nlohmann::ordered_json chunk(int64_t choice_index, const ChoiceState& choice, const RequestOutput& delta,
                               bool first, size_t text_before) const;
  // The final chunk of stream_options.include_usage: empty choices, the usage.
  nlohmann::ordered_json usage_chunk(const UsageCounts& usage) const;

 private:
  nlohmann::ordered_json envelope(const char* object) const;
  std::string token_text(int32_t id) const;
  std::string prompt_text(const PromptInput& p) const;
  nlohmann::ordered_json completion_logprobs(
      const std::vector<TokenLogprob>& lps, size_t offset,
      const std::optional<std::vector<std::optional<TokenLogprob>>>* prompt_lps,
      const PromptInput* prompt) const;
  nlohmann::ordered_json chat_logprobs(const std::vector<TokenLogprob>& lps) const;

  const OpenAIRequest& req_;
  std::string model_name_;
  const Tokenizer* tok_;
  std::string id_;
  int64_t created_;
};

nlohmann::ordered_json usage_json(const UsageCounts& u);
// JSON text of a response; invalid UTF-8 (a token that is part of a character) becomes U+FFFD.
std::string dump_json(const nlohmann::ordered_json& j);
std::string sse_event(const nlohmann::ordered_json& j);
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

}  // namespace longctx::server
