// libFuzzer target: arbitrary bytes through everything a request body meets before the
// engine — the JSON parse, /v1/completions and /v1/chat/completions validation (prompt
// forms, sampling fields, limits, messages and tools, the chat template rendered and
// tokenized with the real Qwen3 tokenizer), the engine's own request checks, and the
// /tokenize and /detokenize bodies. Built by scripts/fuzz.sh (clang, LONGCTX_FUZZ=ON)
// with AddressSanitizer and UndefinedBehaviorSanitizer.
//
// Beyond "no crash, no sanitizer report" it checks what the server promises about bad
// input: every rejection is a 4xx with a message, and every accepted request is inside
// the limits the engine relies on (token ids in the vocabulary, prompt + max_tokens
// within the context, n/logprobs/stop within their flags). A violation aborts, which
// libFuzzer reports as a crash with the input that caused it.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "engine/generation_request.h"
#include "server/api_error.h"
#include "server/openai_request.h"
#include "server/openai_response.h"
#include "server/tokenize_api.h"

namespace longctx::server {
namespace {

[[noreturn]] void fail(const std::string& what, const std::string& detail) {
  std::fprintf(stderr, "request_parser_fuzz: %s: %s\n", what.c_str(), detail.c_str());
  std::abort();
}

// The served model as the fuzzer sees it: the Qwen3 tokenizer and chat template (the
// tiny model's), and a token-id-only variant as with --skip-tokenizer-init.
struct Models {
  Tokenizer tokenizer;
  ChatTemplate chat_template;
  ParseContext text, ids_only;
};

const Models& models() {
  static const Models* m = [] {
    const std::string dir = std::string(LONGCTX_TOKENIZERS_DIR) + "/qwen3";
    auto tok = Tokenizer::load(dir);
    auto tmpl = ChatTemplate::load(dir);
    if (!tok.is_ok() || !tmpl.is_ok())
      fail("setup", "cannot load the Qwen3 tokenizer from " + dir + " (run scripts/fetch_tokenizers.sh): " +
                        (tok.is_ok() ? tmpl.status().message() : tok.status().message()));
    auto* out = new Models{std::move(*tok), std::move(*tmpl), {}, {}};
    out->text.tokenizer = &out->tokenizer;
    out->text.chat_template = &out->chat_template;
    out->text.max_model_len = 2048;  // small, so the context-length check is reachable
    out->text.vocab_size = out->tokenizer.vocab_size();
    out->ids_only.chat_unavailable_reason = "the server runs with --skip-tokenizer-init";
    out->ids_only.max_model_len = 256;
    out->ids_only.vocab_size = 512;  // the fixture models' vocabulary
    return out;
  }();
  return *m;
}

// A rejection must be a client error (4xx) that says something.
void check_rejection(const Status& st, const char* path) {
  const ApiError e = api_error_from(st);
  if (e.http_status < 400 || e.http_status >= 500 || e.message.empty())
    fail(path, "bad input answered " + std::to_string(e.http_status) + ": " + st.message());
  (void)dump_json(e.to_json());
}

void check_accepted(const OpenAIRequest& r, const ParseContext& ctx, const char* path) {
  const RequestLimits& l = ctx.limits;
  const GenerationRequest& p = r.params;
  if (r.prompts.empty()) fail(path, "accepted with no prompt");
  if (r.prompts.size() > static_cast<size_t>(std::max<int64_t>(1, l.max_prompts)))
    fail(path, "more prompts than --max-prompts");
  if (p.n < 1 || p.n > l.max_n) fail(path, "n outside [1, --max-n]: " + std::to_string(p.n));
  if (p.max_tokens < 1 || p.max_tokens > l.max_tokens)
    fail(path, "max_tokens outside [1, --max-tokens-limit]: " + std::to_string(p.max_tokens));
  if (p.sampling.logprobs > l.max_logprobs || p.prompt_logprobs > l.max_logprobs)
    fail(path, "logprobs over --max-logprobs");
  if (static_cast<int64_t>(p.stop.size()) > l.max_stop_strings) fail(path, "stop strings over the limit");
  for (int32_t t : p.stop_token_ids)
    if (t < 0 || t >= ctx.vocab_size) fail(path, "stop token id outside the vocabulary");
  for (const PromptInput& in : r.prompts) {
    if (in.token_ids.empty()) fail(path, "empty prompt accepted");
    if (static_cast<int64_t>(in.token_ids.size()) + p.max_tokens > ctx.max_model_len)
      fail(path, "prompt + max_tokens over the context length");
    for (int32_t t : in.token_ids)
      if (t < 0 || t >= ctx.vocab_size)
        fail(path, "prompt token id outside the vocabulary: " + std::to_string(t));
  }
  // What the engine checks again at submission (llm_engine's validate) either passes or
  // is a 4xx, as the server would answer it.
  EngineLimits el;
  el.max_n = l.max_n;
  el.max_stop_strings = l.max_stop_strings;
  el.max_stop_string_bytes = l.max_stop_string_bytes;
  const std::vector<GenerationRequest> engine = r.engine_requests();
  if (engine.size() != r.prompts.size()) fail(path, "one engine request per prompt expected");
  for (const GenerationRequest& g : engine)
    if (Status st = validate(g, el); !st.is_ok()) check_rejection(st, path);
}

void parse_generation(const nlohmann::ordered_json& body, const ParseContext& ctx, ApiKind kind) {
  const char* path = kind == ApiKind::kChat ? "/v1/chat/completions" : "/v1/completions";
  auto r = kind == ApiKind::kChat ? parse_chat_request(body, ctx) : parse_completion_request(body, ctx);
  if (!r.is_ok()) return check_rejection(r.status(), path);
  check_accepted(*r, ctx, path);
}

void tokenize_and_back(const nlohmann::ordered_json& body, const ParseContext& ctx) {
  auto t = tokenize_response(body, ctx);
  if (!t.is_ok()) return check_rejection(t.status(), "/tokenize");
  (void)dump_json(*t);
  // What /tokenize returns, /detokenize accepts.
  auto d = detokenize_response(nlohmann::ordered_json{{"tokens", (*t)["tokens"]}}, ctx);
  if (!d.is_ok()) fail("/detokenize", "rejected /tokenize's own tokens: " + d.status().message());
  (void)dump_json(*d);
}

}  // namespace
}  // namespace longctx::server

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)longctx::server::models();  // load once, outside the timed runs
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace longctx::server;
  const Models& m = models();
  auto body = parse_request_body(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!body.is_ok()) {
    check_rejection(body.status(), "body");
    return 0;
  }
  for (const ParseContext* ctx : {&m.text, &m.ids_only}) {
    parse_generation(*body, *ctx, ApiKind::kCompletion);
    parse_generation(*body, *ctx, ApiKind::kChat);
    tokenize_and_back(*body, *ctx);
    auto d = detokenize_response(*body, *ctx);
    if (!d.is_ok())
      check_rejection(d.status(), "/detokenize");
    else
      (void)dump_json(*d);
  }
  return 0;
}
