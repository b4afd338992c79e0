#include "server/server_config.h"

namespace longctx::server {

Status ServerConfig::validate() const {
  if (port < 0 || port > 65535)
    return invalid_argument("--port must be in [0, 65535], got " + std::to_string(port));
  if (host.empty()) return invalid_argument("--host must not be empty (e.g. 127.0.0.1)");
  if (http_threads < 1 || http_threads > 4096)
    return invalid_argument("--http-threads must be in [1, 4096], got " + std::to_string(http_threads));
  if (drain_timeout_s < 0) return invalid_argument("--drain-timeout must be >= 0 seconds");
  const RequestLimits& l = limits;
  auto at_least = [](int64_t v, int64_t min, const char* flag) -> Status {
    if (v < min)
      return invalid_argument(std::string(flag) + " must be >= " + std::to_string(min) + ", got " +
                              std::to_string(v));
    return Status::ok();
  };
  LONGCTX_RETURN_IF_ERROR(at_least(l.max_header_bytes, 1024, "--max-header-bytes"));
  LONGCTX_RETURN_IF_ERROR(at_least(l.max_body_bytes, 1024, "--max-body-bytes"));
  LONGCTX_RETURN_IF_ERROR(at_least(l.max_n, 1, "--max-n"));
  LONGCTX_RETURN_IF_ERROR(at_least(l.max_prompts, 1, "--max-prompts"));
  LONGCTX_RETURN_IF_ERROR(at_least(l.max_logprobs, 0, "--max-logprobs"));
  LONGCTX_RETURN_IF_ERROR(at_least(l.max_tokens, 1, "--max-tokens-limit"));
  LONGCTX_RETURN_IF_ERROR(at_least(l.max_messages, 1, "--max-messages"));
  LONGCTX_RETURN_IF_ERROR(at_least(l.max_stop_strings, 0, "--max-stop-strings"));
  LONGCTX_RETURN_IF_ERROR(at_least(l.max_stop_string_bytes, 1, "--max-stop-string-bytes"));
  return Status::ok();
}

}  // namespace longctx::server
