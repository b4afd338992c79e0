// Parsing and validation of /v1/completions and /v1/chat/completions bodies into engine
// requests. Sampling fields are read under their OpenAI/vLLM names by
// read_sampling_fields (shared with `generate --batch-file`); unknown fields are
// ignored; a wrong type or a value beyond a limit is an InvalidArgument naming the
// field (→ 400). Prompts are tokenized here, on the handler's thread.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "engine/generation_request.h"
#include "server/server_config.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace longctx::server {

enum class ApiKind { kCompletion, kChat };

struct PromptInput {
  std::vector<int32_t> token_ids;
  std::optional<std::string> text;  // the prompt as sent, when sent as text (echo)
};

struct OpenAIRequest {
  ApiKind kind = ApiKind::kCompletion;
  std::string model;  // as asked; empty when not given
  std::vector<PromptInput> prompts;
  GenerationRequest params;  // prompt_token_ids empty: one request per prompt is made from it
  bool stream = false;
  bool include_usage = false;     // stream_options.include_usage
  bool echo = false;              // completions: the prompt precedes the text
  bool return_token_ids = false;  // vLLM: prompt_token_ids and token_ids per choice
  int32_t logprobs = -1;          // top-k alternatives per generated token; -1: no logprobs

  // One engine request per prompt.
  std::vector<GenerationRequest> engine_requests() const;
};

// What parsing needs to know about the served model.
struct ParseContext {
  const Tokenizer* tokenizer = nullptr;         // null with --skip-tokenizer-init
  const ChatTemplate* chat_template = nullptr;  // null: chat unavailable, for chat_unavailable_reason
  std::string chat_unavailable_reason;
  int64_t max_model_len = 0;
  int64_t vocab_size = 0;
  RequestLimits limits;
};

// A request body: JSON (UTF-8) holding an object, else an InvalidArgument saying which.
Result<nlohmann::ordered_json> parse_request_body(std::string_view text);

Result<OpenAIRequest> parse_completion_request(const nlohmann::ordered_json& body, const ParseContext& ctx);
Result<OpenAIRequest> parse_chat_request(const nlohmann::ordered_json& body, const ParseContext& ctx);

// A token-id list from JSON: integers in [0, vocab_size); `field` names it in errors.
Result<std::vector<int32_t>> token_ids_of(const nlohmann::ordered_json& j, int64_t vocab_size,
                                          const std::string& field);

}  // namespace longctx::server
