#include "engine/generation_request_json.h"

namespace longctx {
namespace {

using nlohmann::json;

template <typename T>
Status read_number(const json& j, const char* name, T& out) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return Status::ok();
  if constexpr (std::is_floating_point_v<T>) {
    if (!it->is_number()) return invalid_argument(std::string(name) + " must be a number");
  } else {
    if (!it->is_number_integer()) return invalid_argument(std::string(name) + " must be an integer");
  }
  out = it->get<T>();
  return Status::ok();
}

Status read_bool(const json& j, const char* name, bool& out) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return Status::ok();
  if (!it->is_boolean()) return invalid_argument(std::string(name) + " must be true or false");
  out = it->get<bool>();
  return Status::ok();
}

}  // namespace

Status read_sampling_fields(const json& j, GenerationRequest& r) {
  if (!j.is_object()) return invalid_argument("the request must be a JSON object");
  LONGCTX_RETURN_IF_ERROR(read_number(j, "max_tokens", r.max_tokens));
  LONGCTX_RETURN_IF_ERROR(read_number(j, "max_completion_tokens", r.max_tokens));
  LONGCTX_RETURN_IF_ERROR(read_number(j, "min_tokens", r.min_tokens));
  LONGCTX_RETURN_IF_ERROR(read_number(j, "n", r.n));
  LONGCTX_RETURN_IF_ERROR(read_number(j, "temperature", r.sampling.temperature));
  LONGCTX_RETURN_IF_ERROR(read_number(j, "top_p", r.sampling.top_p));
  LONGCTX_RETURN_IF_ERROR(read_number(j, "top_k", r.sampling.top_k));
  LONGCTX_RETURN_IF_ERROR(read_number(j, "min_p", r.sampling.min_p));
  LONGCTX_RETURN_IF_ERROR(read_number(j, "presence_penalty", r.sampling.presence_penalty));
  LONGCTX_RETURN_IF_ERROR(read_number(j, "frequency_penalty", r.sampling.frequency_penalty));
  LONGCTX_RETURN_IF_ERROR(read_number(j, "repetition_penalty", r.sampling.repetition_penalty));
  if (auto it = j.find("seed"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer()) return invalid_argument("seed must be an integer");
    r.sampling.seed = static_cast<uint64_t>(it->get<int64_t>());
  }
  LONGCTX_RETURN_IF_ERROR(read_bool(j, "ignore_eos", r.ignore_eos));
  LONGCTX_RETURN_IF_ERROR(read_bool(j, "skip_special_tokens", r.skip_special_tokens));
  LONGCTX_RETURN_IF_ERROR(read_bool(j, "include_stop_str_in_output", r.include_stop_str_in_output));
  // OpenAI completions: logprobs is an integer (top-k); chat: a boolean plus top_logprobs.
  if (auto it = j.find("logprobs"); it != j.end() && !it->is_null()) {
    if (it->is_boolean()) {
      r.sampling.logprobs = it->get<bool>() ? 0 : -1;
      if (it->get<bool>()) LONGCTX_RETURN_IF_ERROR(read_number(j, "top_logprobs", r.sampling.logprobs));
    } else if (it->is_number_integer()) {
      r.sampling.logprobs = it->get<int32_t>();
    } else {
      return invalid_argument("logprobs must be an integer or a boolean");
    }
  }
  LONGCTX_RETURN_IF_ERROR(read_number(j, "prompt_logprobs", r.prompt_logprobs));
  if (auto it = j.find("stop"); it != j.end() && !it->is_null()) {
    if (it->is_string()) {
      r.stop = {it->get<std::string>()};
    } else if (it->is_array()) {
      r.stop.clear();
      for (const auto& s : *it) {
        if (!s.is_string()) return invalid_argument("stop must be a string or a list of strings");
        r.stop.push_back(s.get<std::string>());
      }
    } else {
      return invalid_argument("stop must be a string or a list of strings");
    }
  }
  if (auto it = j.find("stop_token_ids"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return invalid_argument("stop_token_ids must be a list of integers");
    r.stop_token_ids.clear();
    for (const auto& t : *it) {
      if (!t.is_number_integer()) return invalid_argument("stop_token_ids must be a list of integers");
      r.stop_token_ids.push_back(t.get<int32_t>());
    }
  }
  if (auto it = j.find("cache_salt"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) return invalid_argument("cache_salt must be a string");
    r.cache_salt = it->get<std::string>();
  }
  return Status::ok();
}

}  // namespace longctx
