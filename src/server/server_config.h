// ServerConfig: what `longctx serve` is told about the network, access and the bounds
// on a request. Every limit is a flag with a safe default (the inference-server
// advisories of recent years: huge headers, fan-out through n, oversized logprobs,
// malformed message objects). Validated once; errors name the flag.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace longctx::server {

struct RequestLimits {
  int64_t max_header_bytes = 64 * 1024;      // --max-header-bytes: all header lines together
  int64_t max_body_bytes = 8 * 1024 * 1024;  // --max-body-bytes (413 beyond)
  int64_t max_n = 16;                        // --max-n: continuations per prompt
  int64_t max_prompts = 64;                  // --max-prompts: prompts in one completions request
  int64_t max_logprobs = 20;                 // --max-logprobs: top-k alternatives per token
  int64_t max_tokens = 65536;                // --max-tokens-limit: generated tokens per request
  int64_t max_messages = 1024;               // --max-messages: chat messages per request
  int64_t max_stop_strings = 16;             // --max-stop-strings
  int64_t max_stop_string_bytes = 1024;      // --max-stop-string-bytes
};

struct ServerConfig {
  std::string host = "127.0.0.1";  // --host: serving beyond the machine is an explicit 0.0.0.0
  int port = 8000;                 // --port (0: any free port)
  std::string served_model_name;   // --served-model-name (default: the model directory's name)
  std::string api_key;             // --api-key: empty = no authentication
  bool metrics_open = false;       // --metrics-open: /metrics needs no key even with --api-key
  int64_t http_threads = 64;       // --http-threads: concurrent connections (a stream holds one)
  double drain_timeout_s = 30;     // --drain-timeout: SIGTERM lets in-flight requests finish this long
  RequestLimits limits;

  Status validate() const;
};

}  // namespace longctx::server
