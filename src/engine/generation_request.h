// What a user asks the engine for: a prompt and how to continue it. Validated once at
// add_request (each error names the field, as the server's 400s will).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "ops/cpu/sampling.h"

namespace longctx {

struct GenerationRequest {
  std::vector<int32_t> prompt_token_ids;
  cpu::SamplingParams sampling;
  int64_t max_tokens = 16;  // generated tokens
  int64_t min_tokens = 0;   // EOS and stop tokens are banned until this many were generated
  int64_t n = 1;            // independent continuations sharing the prompt's KV blocks
  std::vector<std::string> stop;          // stop strings, matched on the detokenized text, not in the output
  std::vector<int32_t> stop_token_ids;    // in addition to the model's EOS
  bool ignore_eos = false;
  bool include_stop_str_in_output = false;
  bool skip_special_tokens = true;
  int32_t prompt_logprobs = -1;  // -1 = none; k >= 0: logprob of each prompt token and the top k
  std::string cache_salt;
};

struct EngineLimits {
  int64_t max_n = 16;
  int64_t max_stop_strings = 16;
  int64_t max_stop_string_bytes = 1024;
};

// Checks fields independent of the model (ranges, counts); the engine adds the checks
// that need it (vocab, context length).
Status validate(const GenerationRequest& r, const EngineLimits& limits);

}  // namespace longctx
