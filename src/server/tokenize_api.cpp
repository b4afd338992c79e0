#include "server/tokenize_api.h"

#include "server/chat_messages.h"

namespace longctx::server {

using nlohmann::ordered_json;

Result<ordered_json> tokenize_response(const ordered_json& body, const ParseContext& ctx) {
  if (!body.is_object()) return invalid_argument("the request body must be a JSON object");
  const Tokenizer* tok = ctx.tokenizer;
  if (!tok)
    return invalid_argument("tokenize needs a tokenizer (the server runs with --skip-tokenizer-init)");
  std::vector<int32_t> ids;
  if (body.contains("messages")) {
    if (!ctx.chat_template)
      return invalid_argument("messages: chat is not available: " + ctx.chat_unavailable_reason);
    LONGCTX_ASSIGN_OR_RETURN(ids, chat_prompt_ids(body, *ctx.chat_template, *tok, ctx.limits.max_messages));
  } else {
    auto prompt = body.find("prompt");
    if (prompt == body.end() || !prompt->is_string())
      return invalid_argument("prompt must be a string (or send messages)");
    bool add_special_tokens = true;
    if (auto a = body.find("add_special_tokens"); a != body.end() && !a->is_null()) {
      if (!a->is_boolean()) return invalid_argument("add_special_tokens must be true or false");
      add_special_tokens = a->get<bool>();
    }
    LONGCTX_ASSIGN_OR_RETURN(ids, tok->encode(prompt->get<std::string>(), add_special_tokens));
  }
  ordered_json out = {{"count", ids.size()}, {"max_model_len", ctx.max_model_len}, {"tokens", ids}};
  if (auto s = body.find("return_token_strs"); s != body.end() && !s->is_null()) {
    if (!s->is_boolean()) return invalid_argument("return_token_strs must be true or false");
    if (s->get<bool>()) {
      ordered_json strs = ordered_json::array();
      for (int32_t id : ids) strs.push_back(tok->token_bytes(id));
      out["token_strs"] = strs;
    }
  }
  return out;
}

Result<ordered_json> detokenize_response(const ordered_json& body, const ParseContext& ctx) {
  if (!body.is_object()) return invalid_argument("the request body must be a JSON object");
  const Tokenizer* tok = ctx.tokenizer;
  if (!tok)
    return invalid_argument("detokenize needs a tokenizer (the server runs with --skip-tokenizer-init)");
  auto tokens = body.find("tokens");
  if (tokens == body.end()) return invalid_argument("tokens is required: a list of token ids");
  LONGCTX_ASSIGN_OR_RETURN(auto ids, token_ids_of(*tokens, ctx.vocab_size, "tokens"));
  LONGCTX_ASSIGN_OR_RETURN(std::string text, tok->decode(ids, /*skip_special_tokens=*/false));
  return ordered_json{{"prompt", text}};
}

}  // namespace longctx::server
