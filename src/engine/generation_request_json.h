// Reads the sampling fields of a request from JSON under their OpenAI/vLLM names
// (max_tokens, temperature, top_p, top_k, min_p, seed, stop, stop_token_ids, n,
// presence_penalty, frequency_penalty, repetition_penalty, min_tokens, ignore_eos,
// logprobs, prompt_logprobs, skip_special_tokens, include_stop_str_in_output,
// cache_salt). Unknown fields are ignored; a field of the wrong type is an
// InvalidArgument naming it. Used by `generate --batch-file` and the server.
#pragma once

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "engine/generation_request.h"

namespace longctx {

Status read_sampling_fields(const nlohmann::json& j, GenerationRequest& r);

}  // namespace longctx
