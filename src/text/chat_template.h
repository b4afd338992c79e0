// ChatTemplate: renders a conversation into the prompt text a model was trained on,
// from the Hugging Face chat template (Jinja) in tokenizer_config.json, byte-exactly as
// transformers' apply_chat_template(messages, tokenize=False, add_generation_prompt=...)
// does: trim_blocks + lstrip_blocks, loop controls, raise_exception() and
// strftime_now() globals, the special tokens (bos_token, eos_token, ...) as variables,
// `tools` and `documents` None unless given, and tojson as transformers overrides it
// (json.dumps with ensure_ascii=False, key order kept, no HTML escaping).
//
// Parsed once at load; render() is const and safe to call from several threads.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "text/jinja_interpreter.h"

namespace longctx {

struct ChatMessage {
  std::string role;
  std::string content;
  // Further fields of the message object (tool_calls, reasoning_content, name, ...).
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();

  nlohmann::ordered_json to_json() const;
};

class ChatTemplate {
 public:
  // Reads DIR/tokenizer_config.json: `chat_template` (a string, or the list of
  // {name, template} where "default" is taken) and the special tokens (plain strings or
  // {"content": ...} objects). DIR/chat_template.jinja, when present, takes precedence
  // as it does in transformers. Errors name the file and field.
  static Result<ChatTemplate> load(const std::filesystem::path& dir);
  // special_tokens: {"bos_token": "...", ...}; values as in tokenizer_config.json.
  static Result<ChatTemplate> from_source(std::string source, nlohmann::json special_tokens);

  // messages: a JSON array of OpenAI-style message objects. extra_context: further
  // template variables (tools, enable_thinking, date_string, ...), overriding defaults.
  // Pass ordered_json to keep the caller's key order where the template prints JSON.
  Result<std::string> render(const nlohmann::json& messages, bool add_generation_prompt = true,
                             const nlohmann::json& extra_context = nlohmann::json::object()) const;
  Result<std::string> render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                             const nlohmann::ordered_json& extra_context) const;
  Result<std::string> render(const std::vector<ChatMessage>& messages,
                             bool add_generation_prompt = true) const;

  const std::string& source() const { return source_; }

 private:
  ChatTemplate(std::string source, jinja::Template tmpl, jinja::Object special_tokens, std::string origin)
      : source_(std::move(source)),
        template_(std::move(tmpl)),
        special_tokens_(std::move(special_tokens)),
        origin_(std::move(origin)) {}

  static Result<ChatTemplate> build(std::string source, const nlohmann::json& special_tokens,
                                    const std::string& origin);
  Result<std::string> render_values(jinja::Value messages, bool add_generation_prompt,
                                    const jinja::Value& extra_context) const;

  std::string source_;
  jinja::Template template_;
  jinja::Object special_tokens_;  // template variables from the tokenizer config
  std::string origin_;            // where the template came from, for error messages
};

}  // namespace longctx
