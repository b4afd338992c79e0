#include "text/chat_template.h"

#include <fmt/format.h>

#include <ctime>
#include <fstream>
#include <sstream>

#include "text/jinja_error.h"

namespace longctx {
namespace {

// The tokenizer attributes transformers passes to the template (special_tokens_map).
constexpr const char* kSpecialTokenKeys[] = {
    "bos_token", "eos_token", "unk_token",  "sep_token",
    "pad_token", "cls_token", "mask_token", "additional_special_tokens"};

Result<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found(fmt::format("cannot open {}", path.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A special token as the template sees it: "text" stays, {"content": "text"} (an
// AddedToken) becomes "text", null is left out (transformers omits unset tokens).
std::optional<jinja::Value> special_token_value(const nlohmann::json& v) {
  if (v.is_null()) return std::nullopt;
  if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    return jinja::Value(v["content"].get<std::string>());
  }
  if (v.is_array()) {
    jinja::Array items;
    for (const auto& e : v) {
      if (auto x = special_token_value(e)) items.push_back(*x);
    }
    return jinja::Value::list(std::move(items));
  }
  return jinja::Value::from_json(v);
}

jinja::TemplateOptions chat_template_options() {
  // transformers: ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
  // extensions=[AssistantTracker, loopcontrols]), with its own tojson filter.
  jinja::TemplateOptions options;
  options.lexer.trim_blocks = true;
  options.lexer.lstrip_blocks = true;
  options.lexer.keep_trailing_newline = false;
  options.filters.tojson_html_safe = false;
  return options;
}

Result<std::string> pick_template(const nlohmann::json& field, const std::string& origin) {
  if (field.is_string()) return field.get<std::string>();
  if (field.is_array()) {
    std::string names;
    for (const auto& entry : field) {
      if (!entry.is_object() || !entry.contains("name") || !entry.contains("template")) continue;
      const std::string name = entry["name"].is_string() ? entry["name"].get<std::string>() : "";
      if (name == "default" && entry["template"].is_string()) return entry["template"].get<std::string>();
      names += (names.empty() ? "" : ", ") + name;
    }
    return invalid_argument(
        fmt::format("{}: field 'chat_template' is a list of named templates without a "
                    "'default' one (found: {})",
                    origin, names));
  }
  return invalid_argument(
      fmt::format("{}: field 'chat_template' must be a string or a list of {{name, template}}", origin));
}

}  // namespace

nlohmann::ordered_json ChatMessage::to_json() const {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  j["role"] = role;
  j["content"] = content;
  if (extra.is_object()) {
    for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = it.value();
  }
  return j;
}

Result<ChatTemplate> ChatTemplate::load(const std::filesystem::path& dir) {
  const std::filesystem::path config_path = dir / "tokenizer_config.json";
  LONGCTX_ASSIGN_OR_RETURN(std::string text, read_file(config_path));
  nlohmann::json config = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) {
    return data_loss(fmt::format("{} is not a JSON object", config_path.string()));
  }
  nlohmann::json special = nlohmann::json::object();
  for (const char* key : kSpecialTokenKeys) {
    if (config.contains(key)) special[key] = config[key];
  }
  // transformers saves newer templates beside the config, and they take precedence.
  const std::filesystem::path jinja_path = dir / "chat_template.jinja";
  if (std::filesystem::exists(jinja_path)) {
    LONGCTX_ASSIGN_OR_RETURN(std::string source, read_file(jinja_path));
    return build(std::move(source), special, jinja_path.string());
  }
  if (!config.contains("chat_template") || config["chat_template"].is_null()) {
    return not_found(fmt::format("{} has no 'chat_template' field (and there is no {})", config_path.string(),
                                 jinja_path.filename().string()));
  }
  LONGCTX_ASSIGN_OR_RETURN(std::string source, pick_template(config["chat_template"], config_path.string()));
  return build(std::move(source), special, config_path.string());
}

Result<ChatTemplate> ChatTemplate::from_source(std::string source, nlohmann::json special_tokens) {
  return build(std::move(source), special_tokens, "chat template");
}

Result<ChatTemplate> ChatTemplate::build(std::string source, const nlohmann::json& special_tokens,
                                         const std::string& origin) {
  if (!special_tokens.is_object() && !special_tokens.is_null()) {
    return invalid_argument(fmt::format("{}: special tokens must be a JSON object", origin));
  }
  auto parsed = jinja::Template::parse(source, chat_template_options());
  if (!parsed.is_ok()) {
    return Status(parsed.status().code(), fmt::format("{}: {}", origin, parsed.status().message()));
  }
  jinja::Object tokens;
  if (special_tokens.is_object()) {
    for (auto it = special_tokens.begin(); it != special_tokens.end(); ++it) {
      if (auto v = special_token_value(it.value())) tokens.set(it.key(), std::move(*v));
    }
  }
  return ChatTemplate(std::move(source), std::move(parsed).value(), std::move(tokens), origin);
}

namespace {

jinja::Value raise_exception_function() {
  return jinja::Value::function("raise_exception", [](const jinja::CallArgs& a) -> jinja::Value {
    throw jinja::RaisedError(a.args.empty() ? std::string() : jinja::to_str(a.args[0]));
  });
}

// datetime.now().strftime(format), in local time.
jinja::Value strftime_now_function() {
  return jinja::Value::function("strftime_now", [](const jinja::CallArgs& a) -> jinja::Value {
    if (a.args.empty() || !a.args[0].is_string())
      throw jinja::Error("strftime_now(format) needs a format string");
    const std::string& format = a.args[0].as_string();
    const std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    std::string out(64 + format.size() * 4, '\0');
    const size_t n = std::strftime(out.data(), out.size(), format.c_str(), &local);
    if (n == 0 && !format.empty())
      throw jinja::Error("strftime_now: format produced no output or is too long");
    out.resize(n);
    return out;
  });
}

}  // namespace

Result<std::string> ChatTemplate::render_values(jinja::Value messages, bool add_generation_prompt,
                                                const jinja::Value& extra_context) const {
  if (!messages.is_sequence()) return invalid_argument("chat template: messages must be a JSON array");
  if (!extra_context.is_mapping() && !extra_context.is_none()) {
    return invalid_argument("chat template: extra context must be a JSON object");
  }
  // The variables transformers passes: messages, tools, documents,
  // add_generation_prompt, the special tokens, then the caller's extra kwargs.
  jinja::Object context;
  context.set("messages", std::move(messages));
  context.set("tools", jinja::Value::none());
  context.set("documents", jinja::Value::none());
  context.set("add_generation_prompt", add_generation_prompt);
  for (const auto& [key, value] : special_tokens_.entries) context.set(key, value);
  if (extra_context.is_mapping()) {
    for (const auto& [key, value] : extra_context.as_object().entries) context.set(key, value);
  }
  context.set("raise_exception", raise_exception_function());
  context.set("strftime_now", strftime_now_function());
  auto rendered = template_.render(context);
  if (!rendered.is_ok()) {
    return Status(rendered.status().code(), fmt::format("{}: {}", origin_, rendered.status().message()));
  }
  return rendered;
}

Result<std::string> ChatTemplate::render(const nlohmann::json& messages, bool add_generation_prompt,
                                         const nlohmann::json& extra_context) const {
  return render_values(jinja::Value::from_json(messages), add_generation_prompt,
                       jinja::Value::from_json(extra_context));
}

Result<std::string> ChatTemplate::render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                         const nlohmann::ordered_json& extra_context) const {
  return render_values(jinja::Value::from_json(messages), add_generation_prompt,
                       jinja::Value::from_json(extra_context));
}

Result<std::string> ChatTemplate::render(const std::vector<ChatMessage>& messages,
                                         bool add_generation_prompt) const {
  nlohmann::ordered_json array = nlohmann::ordered_json::array();
  for (const ChatMessage& m : messages) array.push_back(m.to_json());
  return render(array, add_generation_prompt, nlohmann::ordered_json::object());
}

}  // namespace longctx
