// POST /tokenize and /detokenize (vLLM's shapes) as plain functions from a parsed body
// to the response JSON, apart from HTTP so that the request fuzzer (tests/fuzz) runs
// exactly what a handler runs. Errors are InvalidArgument naming the field (→ 400).
#pragma once

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "server/openai_request.h"

namespace longctx::server {

// {"prompt": "...", "add_special_tokens"?, "return_token_strs"?} or {"messages": [...]}
// → {"count", "max_model_len", "tokens", "token_strs"?}.
Result<nlohmann::ordered_json> tokenize_response(const nlohmann::ordered_json& body, const ParseContext& ctx);
// {"tokens": [ids]} → {"prompt": text}.
Result<nlohmann::ordered_json> detokenize_response(const nlohmann::ordered_json& body,
                                                   const ParseContext& ctx);

}  // namespace longctx::server
