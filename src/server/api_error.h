// Errors as the OpenAI API returns them: an HTTP status and
// {"error": {"message", "type", "param", "code"}}. Built from a Status at the boundary
// (InvalidArgument → 400, NotFound → 404, ResourceExhausted → 429, ...).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/status.h"

namespace longctx::server {

struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type;                  // invalid_request_error, authentication_error, ...
  std::optional<std::string> param;  // the request field at fault, when known
  std::optional<std::string> code;   // machine-readable: model_not_found, invalid_api_key, ...

  nlohmann::ordered_json to_json() const;
};

ApiError bad_request(std::string message, std::optional<std::string> param = std::nullopt);
ApiError unauthorized();
ApiError not_found_error(std::string message, std::string code);
ApiError payload_too_large(std::string message);
ApiError unavailable(std::string message);
// Maps a Status from parsing or the engine; the param is taken from the message when it
// starts with a request field's name ("max_tokens must be >= 1" → param max_tokens).
ApiError api_error_from(const Status& st);

}  // namespace longctx::server
