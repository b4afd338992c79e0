#include "server/openai_response.h"

#include <chrono>
#include <random>

namespace longctx::server {
namespace {

using nlohmann::ordered_json;

std::string random_hex(size_t n) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  static const char* kHex = "0123456789abcdef";
  std::string s(n, '0');
  for (char& c : s) c = kHex[rng() & 15];
  return s;
}

ordered_json stop_reason_json(const std::variant<std::monostate, std::string, int32_t>& r) {
  if (const auto* s = std::get_if<std::string>(&r)) return *s;
  if (const auto* t = std::get_if<int32_t>(&r)) return *t;
  return nullptr;
}

ordered_json bytes_of(const std::string& s) {
  ordered_json b = ordered_json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

}  // namespace

ordered_json usage_json(const UsageCounts& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"completion_tokens", u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

std::string dump_json(const ordered_json& j) {
  return j.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

std::string sse_event(const ordered_json& j) { return "data: " + dump_json(j) + "\n\n"; }

ResponseFormatter::ResponseFormatter(const OpenAIRequest& req, std::string model_name,
                                     const Tokenizer* tokenizer)
    : req_(req),
      model_name_(std::move(model_name)),
      tok_(tokenizer),
      id_((req.kind == ApiKind::kChat ? "chatcmpl-" : "cmpl-") + random_hex(32)),
      created_(std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count()) {}

ordered_json ResponseFormatter::envelope(const char* object) const {
  return {{"id", id_}, {"object", object}, {"created", created_}, {"model", model_name_}};
}

// vLLM's form for a token without a tokenizer.
std::string ResponseFormatter::token_text(int32_t id) const {
  return tok_ ? tok_->token_bytes(id) : "token_id:" + std::to_string(id);
}

std::string ResponseFormatter::prompt_text(const PromptInput& p) const {
  if (p.text) return *p.text;
  if (!tok_) return "";
  auto t = tok_->decode(p.token_ids, /*skip_special_tokens=*/false);
  return t.is_ok() ? *t : "";
}

ordered_json ResponseFormatter::completion_logprobs(
    const std::vector<TokenLogprob>& lps, size_t offset,
    const std::optional<std::vector<std::optional<TokenLogprob>>>* prompt_lps,
    const PromptInput* prompt) const {
  ordered_json tokens = ordered_json::array(), token_lps = ordered_json::array(),
               tops = ordered_json::array(), offsets = ordered_json::array();
  auto add = [&](int32_t token, const TokenLogprob* lp) {
    tokens.push_back(token_text(token));
    offsets.push_back(offset);
    offset += token_text(token).size();
    if (!lp) {
      token_lps.push_back(nullptr);
      tops.push_back(nullptr);
      return;
    }
    token_lps.push_back(lp->logprob);
    ordered_json top = ordered_json::object();
    for (const auto& [t, l] : lp->top) top[token_text(t)] = l;
    tops.push_back(top);
  };
  if (prompt_lps && *prompt_lps && prompt) {
    const auto& pl = **prompt_lps;
    for (size_t i = 0; i < prompt->token_ids.size(); ++i)
      add(prompt->token_ids[i], i < pl.size() && pl[i] ? &*pl[i] : nullptr);
  }
  for (const TokenLogprob& lp : lps) add(lp.token, &lp);
  return {
      {"text_offset", offsets}, {"token_logprobs", token_lps}, {"tokens", tokens}, {"top_logprobs", tops}};
}

ordered_json ResponseFormatter::chat_logprobs(const std::vector<TokenLogprob>& lps) const {
  ordered_json content = ordered_json::array();
  for (const TokenLogprob& lp : lps) {
    const std::string s = token_text(lp.token);
    ordered_json top = ordered_json::array();
    for (const auto& [t, l] : lp.top) {
      const std::string ts = token_text(t);
      top.push_back({{"token", ts}, {"logprob", l}, {"bytes", bytes_of(ts)}});
    }
    content.push_back({{"token", s}, {"logprob", lp.logprob}, {"bytes", bytes_of(s)}, {"top_logprobs", top}});
  }
  return {{"content", content}};
}

ordered_json ResponseFormatter::response(const std::vector<ChoiceState>& choices,
                                         const UsageCounts& usage) const {
  const bool chat = req_.kind == ApiKind::kChat;
  ordered_json r = envelope(chat ? "chat.completion" : "text_completion");
  ordered_json out = ordered_json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const ChoiceState& c = choices[i];
    const PromptInput& prompt = req_.prompts[static_cast<size_t>(c.prompt_index)];
    ordered_json ch = {{"index", i}};
    if (chat) {
      ch["message"] = {{"role", "assistant"}, {"content", c.text}};
      ch["logprobs"] = req_.logprobs >= 0 ? chat_logprobs(c.logprobs) : ordered_json(nullptr);
    } else {
      const std::string echo = req_.echo ? prompt_text(prompt) : "";
      ch["text"] = echo + c.text;
      ch["logprobs"] =
          req_.logprobs >= 0
              ? completion_logprobs(c.logprobs, 0, req_.echo ? &c.prompt_logprobs : nullptr, &prompt)
              : ordered_json(nullptr);
    }
    ch["finish_reason"] = c.finish_reason.empty() ? ordered_json(nullptr) : ordered_json(c.finish_reason);
    ch["stop_reason"] = stop_reason_json(c.stop_reason);
    if (req_.return_token_ids) {
      ch["prompt_token_ids"] = prompt.token_ids;
      ch["token_ids"] = c.token_ids;
    }
    out.push_back(std::move(ch));
  }
  r["choices"] = std::move(out);
  r["usage"] = usage_json(usage);
  if (chat && req_.return_token_ids) r["prompt_token_ids"] = req_.prompts.front().token_ids;
  return r;
}

ordered_json ResponseFormatter::chunk(int64_t choice_index, const ChoiceState& choice,
                                      const RequestOutput& delta, bool first, size_t text_before) const {
  const bool chat = req_.kind == ApiKind::kChat;
  const PromptInput& prompt = req_.prompts[static_cast<size_t>(choice.prompt_index)];
  ordered_json r = envelope(chat ? "chat.completion.chunk" : "text_completion");
  ordered_json ch = {{"index", choice_index}};
  if (chat) {
    ordered_json d = ordered_json::object();
    if (first) d["role"] = "assistant";
    d["content"] = delta.text;
    ch["delta"] = std::move(d);
    ch["logprobs"] = req_.logprobs >= 0 ? chat_logprobs(delta.logprobs) : ordered_json(nullptr);
  } else {
    const std::string echo = first && req_.echo ? prompt_text(prompt) : "";
    ch["text"] = echo + delta.text;
    if (req_.logprobs >= 0) {
      const bool with_prompt = first && req_.echo;
      ch["logprobs"] = completion_logprobs(delta.logprobs, with_prompt ? 0 : text_before,
                                           with_prompt ? &choice.prompt_logprobs : nullptr, &prompt);
    } else {
      ch["logprobs"] = nullptr;
    }
  }
  ch["finish_reason"] = delta.finished ? ordered_json(delta.finish_reason) : ordered_json(nullptr);
  ch["stop_reason"] = delta.finished ? stop_reason_json(delta.stop_reason) : ordered_json(nullptr);
  if (req_.return_token_ids) {
    if (first) ch["prompt_token_ids"] = prompt.token_ids;
    ch["token_ids"] = delta.new_token_ids;
  }
  r["choices"] = ordered_json::array({std::move(ch)});
  if (req_.include_usage) r["usage"] = nullptr;  // as OpenAI: only the last chunk carries it
  return r;
}

ordered_json ResponseFormatter::usage_chunk(const UsageCounts& usage) const {
  ordered_json r = envelope(req_.kind == ApiKind::kChat ? "chat.completion.chunk" : "text_completion");
  r["choices"] = ordered_json::array();
  r["usage"] = usage_json(usage);
  return r;
}

}  // namespace longctx::server
