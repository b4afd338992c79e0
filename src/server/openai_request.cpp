#include "server/openai_request.h"

#include "engine/generation_request_json.h"
#include "server/chat_messages.h"

namespace longctx::server {
namespace {

using nlohmann::ordered_json;

Status read_bool(const ordered_json& body, const char* name, bool& out) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return Status::ok();
  if (!it->is_boolean()) return invalid_argument(std::string(name) + " must be true or false");
  out = it->get<bool>();
  return Status::ok();
}

bool has_field(const ordered_json& body, const char* name) {
  auto it = body.find(name);
  return it != body.end() && !it->is_null();
}

// The fields both endpoints share: model, stream, stream_options, sampling, limits.
Status read_common(const ordered_json& body, const ParseContext& ctx, OpenAIRequest& r) {
  if (!body.is_object()) return invalid_argument("the request body must be a JSON object");
  if (auto m = body.find("model"); m != body.end() && !m->is_null()) {
    if (!m->is_string()) return invalid_argument("model must be a string");
    r.model = m->get<std::string>();
  }
  LONGCTX_RETURN_IF_ERROR(read_bool(body, "stream", r.stream));
  if (auto so = body.find("stream_options"); so != body.end() && !so->is_null()) {
    if (!so->is_object()) return invalid_argument("stream_options must be an object");
    LONGCTX_RETURN_IF_ERROR(read_bool(*so, "include_usage", r.include_usage));
  }
  LONGCTX_RETURN_IF_ERROR(read_bool(body, "return_token_ids", r.return_token_ids));
  LONGCTX_RETURN_IF_ERROR(read_sampling_fields(nlohmann::json(body), r.params));
  r.logprobs = r.params.sampling.logprobs;

  const RequestLimits& l = ctx.limits;
  const GenerationRequest& p = r.params;
  if (p.n < 1 || p.n > l.max_n)
    return invalid_argument("n must be in [1, " + std::to_string(l.max_n) + "] (--max-n), got " +
                            std::to_string(p.n));
  if (p.sampling.logprobs > l.max_logprobs)
    return invalid_argument("logprobs must be at most " + std::to_string(l.max_logprobs) +
                            " (--max-logprobs), got " + std::to_string(p.sampling.logprobs));
  if (p.sampling.logprobs < -1) return invalid_argument("logprobs must be >= 0");
  if (p.prompt_logprobs > l.max_logprobs)
    return invalid_argument("prompt_logprobs must be at most " + std::to_string(l.max_logprobs) +
                            " (--max-logprobs), got " + std::to_string(p.prompt_logprobs));
  if (p.max_tokens > l.max_tokens)
    return invalid_argument("max_tokens must be at most " + std::to_string(l.max_tokens) +
                            " (--max-tokens-limit), got " + std::to_string(p.max_tokens));
  if (p.max_tokens < 1)
    return invalid_argument("max_tokens must be >= 1, got " + std::to_string(p.max_tokens));
  if (static_cast<int64_t>(p.stop.size()) > l.max_stop_strings)
    return invalid_argument("stop: at most " + std::to_string(l.max_stop_strings) +
                            " stop strings (--max-stop-strings), got " + std::to_string(p.stop.size()));
  for (const std::string& s : p.stop)
    if (static_cast<int64_t>(s.size()) > l.max_stop_string_bytes)
      return invalid_argument("stop: a stop string is longer than " +
                              std::to_string(l.max_stop_string_bytes) + " bytes (--max-stop-string-bytes)");
  if (!p.stop.empty() && !ctx.tokenizer)
    return invalid_argument(
        "stop: stop strings need a tokenizer (the server runs with --skip-tokenizer-init); use "
        "stop_token_ids");
  for (int32_t t : p.stop_token_ids)
    if (t < 0 || t >= ctx.vocab_size)
      return invalid_argument("stop_token_ids: " + std::to_string(t) + " is outside the vocabulary [0, " +
                              std::to_string(ctx.vocab_size) + ")");
  return Status::ok();
}

// Context length: the prompt and its continuation must fit, as vLLM checks.
Status check_length(const OpenAIRequest& r, const ParseContext& ctx) {
  for (size_t i = 0; i < r.prompts.size(); ++i) {
    const int64_t len = static_cast<int64_t>(r.prompts[i].token_ids.size());
    if (len == 0)
      return invalid_argument("prompt: prompt " + std::to_string(i) +
                              " is empty (at least one token is needed)");
    if (len + r.params.max_tokens > ctx.max_model_len)
      return invalid_argument("prompt: this model's maximum context length is " +
                              std::to_string(ctx.max_model_len) + " tokens; the request asked for " +
                              std::to_string(len + r.params.max_tokens) + " (" + std::to_string(len) +
                              " in the prompt, " + std::to_string(r.params.max_tokens) +
                              " to generate); shorten the prompt or lower max_tokens");
  }
  return Status::ok();
}

}  // namespace

Result<std::vector<int32_t>> token_ids_of(const ordered_json& j, int64_t vocab_size,
                                          const std::string& field) {
  if (!j.is_array()) return invalid_argument(field + " must be a list of token ids");
  std::vector<int32_t> ids;
  ids.reserve(j.size());
  for (size_t i = 0; i < j.size(); ++i) {
    const ordered_json& t = j[i];
    if (!t.is_number_integer())
      return invalid_argument(field + "[" + std::to_string(i) + "] must be an integer token id");
    // Compare as the widest type first: a huge value must not wrap into the vocabulary.
    const bool negative = t.is_number_unsigned() ? false : t.get<int64_t>() < 0;
    const uint64_t v = negative ? 0 : t.get<uint64_t>();
    if (negative || v >= static_cast<uint64_t>(vocab_size))
      return invalid_argument(field + ": token id " + t.dump() + " at index " + std::to_string(i) +
                              " is outside the vocabulary [0, " + std::to_string(vocab_size) + ")");
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

Result<ordered_json> parse_request_body(std::string_view text) {
  ordered_json body = ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return invalid_argument("the request body is not valid JSON (or not valid UTF-8)");
  if (!body.is_object()) return invalid_argument("the request body must be a JSON object");
  return body;
}

std::vector<GenerationRequest> OpenAIRequest::engine_requests() const {
  std::vector<GenerationRequest> out;
  for (const PromptInput& p : prompts) {
    GenerationRequest g = params;
    g.prompt_token_ids = p.token_ids;
    out.push_back(std::move(g));
  }
  return out;
}

Result<OpenAIRequest> parse_completion_request(const ordered_json& body, const ParseContext& ctx) {
  OpenAIRequest r;
  r.kind = ApiKind::kCompletion;
  LONGCTX_RETURN_IF_ERROR(read_common(body, ctx, r));
  LONGCTX_RETURN_IF_ERROR(read_bool(body, "echo", r.echo));
  bool add_special_tokens = true;
  LONGCTX_RETURN_IF_ERROR(read_bool(body, "add_special_tokens", add_special_tokens));
  // echo with logprobs reports the prompt's logprobs too, as OpenAI did.
  if (r.echo && r.logprobs >= 0) r.params.prompt_logprobs = std::max(r.params.prompt_logprobs, r.logprobs);

  auto prompt = body.find("prompt");
  if (prompt == body.end() || prompt->is_null())
    return invalid_argument(
        "prompt is required: a string, a list of strings, a list of token ids or a list of such lists");
  auto from_text = [&](const ordered_json& s) -> Result<PromptInput> {
    if (!ctx.tokenizer)
      return invalid_argument(
          "prompt: text prompts need a tokenizer (the server runs with --skip-tokenizer-init); send token "
          "ids");
    LONGCTX_ASSIGN_OR_RETURN(auto ids, ctx.tokenizer->encode(s.get<std::string>(), add_special_tokens));
    return PromptInput{std::move(ids), s.get<std::string>()};
  };
  if (prompt->is_string()) {
    LONGCTX_ASSIGN_OR_RETURN(PromptInput p, from_text(*prompt));
    r.prompts.push_back(std::move(p));
  } else if (prompt->is_array()) {
    if (prompt->empty()) return invalid_argument("prompt must not be empty");
    const ordered_json& first = prompt->front();
    if (first.is_number()) {
      LONGCTX_ASSIGN_OR_RETURN(auto ids, token_ids_of(*prompt, ctx.vocab_size, "prompt"));
      r.prompts.push_back({std::move(ids), std::nullopt});
    } else {
      if (static_cast<int64_t>(prompt->size()) > ctx.limits.max_prompts)
        return invalid_argument("prompt: at most " + std::to_string(ctx.limits.max_prompts) +
                                " prompts in one request (--max-prompts), got " +
                                std::to_string(prompt->size()));
      for (size_t i = 0; i < prompt->size(); ++i) {
        const ordered_json& item = (*prompt)[i];
        if (item.is_string()) {
          LONGCTX_ASSIGN_OR_RETURN(PromptInput p, from_text(item));
          r.prompts.push_back(std::move(p));
        } else if (item.is_array()) {
          LONGCTX_ASSIGN_OR_RETURN(auto ids,
                                   token_ids_of(item, ctx.vocab_size, "prompt[" + std::to_string(i) + "]"));
          r.prompts.push_back({std::move(ids), std::nullopt});
        } else {
          return invalid_argument("prompt[" + std::to_string(i) +
                                  "] must be a string or a list of token ids");
        }
      }
    }
  } else {
    return invalid_argument(
        "prompt must be a string, a list of strings, a list of token ids or a list of such lists");
  }
  LONGCTX_RETURN_IF_ERROR(check_length(r, ctx));
  return r;
}

Result<OpenAIRequest> parse_chat_request(const ordered_json& body, const ParseContext& ctx) {
  OpenAIRequest r;
  r.kind = ApiKind::kChat;
  LONGCTX_RETURN_IF_ERROR(read_common(body, ctx, r));
  if (!ctx.tokenizer || !ctx.chat_template)
    return invalid_argument("messages: chat is not available: " + ctx.chat_unavailable_reason);
  // Chat's max_tokens defaults to the rest of the context (bounded by --max-tokens-limit).
  const bool max_given = has_field(body, "max_tokens") || has_field(body, "max_completion_tokens");
  LONGCTX_ASSIGN_OR_RETURN(
      auto ids, chat_prompt_ids(body, *ctx.chat_template, *ctx.tokenizer, ctx.limits.max_messages));
  if (!max_given) {
    const int64_t room = ctx.max_model_len - static_cast<int64_t>(ids.size());
    r.params.max_tokens = std::max<int64_t>(1, std::min(room, ctx.limits.max_tokens));
  }
  r.prompts.push_back({std::move(ids), std::nullopt});
  LONGCTX_RETURN_IF_ERROR(check_length(r, ctx));
  return r;
}

}  // namespace longctx::server
