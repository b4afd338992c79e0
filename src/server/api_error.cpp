#include "server/api_error.h"

#include <cctype>

namespace longctx::server {

nlohmann::ordered_json ApiError::to_json() const {
  nlohmann::ordered_json e;
  e["message"] = message;
  e["type"] = type;
  e["param"] = param ? nlohmann::ordered_json(*param) : nlohmann::ordered_json(nullptr);
  e["code"] = code ? nlohmann::ordered_json(*code) : nlohmann::ordered_json(nullptr);
  return {{"error", e}};
}

ApiError bad_request(std::string message, std::optional<std::string> param) {
  return {400, std::move(message), "invalid_request_error", std::move(param), std::nullopt};
}

ApiError unauthorized() {
  return {401, "invalid or missing API key: send 'Authorization: Bearer <key>'", "authentication_error",
          std::nullopt, "invalid_api_key"};
}

ApiError not_found_error(std::string message, std::string code) {
  return {404, std::move(message), "not_found_error", std::nullopt, std::move(code)};
}

ApiError payload_too_large(std::string message) {
  return {413, std::move(message), "invalid_request_error", std::nullopt, "request_too_large"};
}

ApiError unavailable(std::string message) {
  return {503, std::move(message), "service_unavailable_error", std::nullopt, "service_unavailable"};
}

namespace {

// The leading identifier of a message ("max_tokens must ..." → "max_tokens",
// "messages[2].content: ..." → "messages[2].content"), if it looks like a field.
std::optional<std::string> leading_field(const std::string& msg) {
  size_t i = 0;
  while (i < msg.size() && (std::islower(static_cast<unsigned char>(msg[i])) ||
                            std::isdigit(static_cast<unsigned char>(msg[i])) || msg[i] == '_' ||
                            msg[i] == '.' || msg[i] == '[' || msg[i] == ']'))
    ++i;
  if (i == 0 || i >= msg.size() || (msg[i] != ' ' && msg[i] != ':')) return std::nullopt;
  std::string f = msg.substr(0, i);
  static const char* kFields[] = {"prompt",
                                  "messages",
                                  "max_tokens",
                                  "max_completion_tokens",
                                  "min_tokens",
                                  "n",
                                  "temperature",
                                  "top_p",
                                  "top_k",
                                  "min_p",
                                  "presence_penalty",
                                  "frequency_penalty",
                                  "repetition_penalty",
                                  "seed",
                                  "stop",
                                  "stop_token_ids",
                                  "logprobs",
                                  "top_logprobs",
                                  "prompt_logprobs",
                                  "cache_salt",
                                  "model",
                                  "tokens",
                                  "tools",
                                  "stream",
                                  "stream_options",
                                  "echo",
                                  "ignore_eos"};
  const std::string head = f.substr(0, f.find_first_of(".["));
  for (const char* k : kFields)
    if (head == k) return f;
  return std::nullopt;
}

}  // namespace

ApiError api_error_from(const Status& st) {
  switch (st.code()) {
    case StatusCode::kNotFound: return not_found_error(st.message(), "not_found");
    case StatusCode::kResourceExhausted:
      return {429, st.message(), "rate_limit_error", std::nullopt, "rate_limit_exceeded"};
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
    case StatusCode::kUnimplemented: return bad_request(st.message(), leading_field(st.message()));
    default: return {500, st.message(), "internal_error", std::nullopt, std::nullopt};
  }
}

}  // namespace longctx::server
