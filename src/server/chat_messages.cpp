#include "server/chat_messages.h"

namespace longctx::server {
namespace {

using nlohmann::ordered_json;

Result<ordered_json> content_of(const ordered_json& c, const std::string& where) {
  if (c.is_null() || c.is_string()) return c;
  if (!c.is_array()) return invalid_argument(where + " must be a string, null or a list of content parts");
  std::string text;
  for (size_t i = 0; i < c.size(); ++i) {
    const std::string at = where + "[" + std::to_string(i) + "]";
    const ordered_json& part = c[i];
    if (!part.is_object())
      return invalid_argument(at + " must be an object like {\"type\": \"text\", \"text\": \"...\"}");
    auto type = part.find("type");
    if (type == part.end() || !type->is_string()) return invalid_argument(at + ".type must be a string");
    if (type->get<std::string>() != "text")
      return invalid_argument(at + ".type '" + type->get<std::string>() +
                              "' is not supported (only text parts)");
    auto t = part.find("text");
    if (t == part.end() || !t->is_string()) return invalid_argument(at + ".text must be a string");
    if (!text.empty()) text += "\n";
    text += t->get<std::string>();
  }
  return ordered_json(text);
}

Result<ordered_json> tool_calls_of(const ordered_json& calls, const std::string& where) {
  if (!calls.is_array()) return invalid_argument(where + " must be a list of tool calls");
  ordered_json out = ordered_json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    const std::string at = where + "[" + std::to_string(i) + "]";
    const ordered_json& c = calls[i];
    if (!c.is_object()) return invalid_argument(at + " must be an object");
    ordered_json call = ordered_json::object();
    if (auto id = c.find("id"); id != c.end()) {
      if (!id->is_string()) return invalid_argument(at + ".id must be a string");
      call["id"] = *id;
    }
    call["type"] = "function";
    auto fn = c.find("function");
    if (fn == c.end() || !fn->is_object()) return invalid_argument(at + ".function must be an object");
    auto name = fn->find("name");
    if (name == fn->end() || !name->is_string())
      return invalid_argument(at + ".function.name must be a string");
    ordered_json f = {{"name", *name}};
    if (auto args = fn->find("arguments"); args != fn->end()) {
      if (args->is_string()) {
        // OpenAI sends arguments as a JSON string; templates print them as an object.
        ordered_json parsed = ordered_json::parse(args->get<std::string>(), nullptr, false);
        f["arguments"] = parsed.is_discarded() ? *args : parsed;
      } else if (args->is_object()) {
        f["arguments"] = *args;
      } else {
        return invalid_argument(at + ".function.arguments must be a JSON string or an object");
      }
    } else {
      f["arguments"] = ordered_json::object();
    }
    call["function"] = f;
    out.push_back(call);
  }
  return out;
}

}  // namespace

Result<ordered_json> normalize_messages(const ordered_json& messages, int64_t max_messages) {
  if (!messages.is_array()) return invalid_argument("messages must be a list of message objects");
  if (messages.empty()) return invalid_argument("messages must not be empty");
  if (static_cast<int64_t>(messages.size()) > max_messages)
    return invalid_argument("messages: at most " + std::to_string(max_messages) +
                            " messages (--max-messages), got " + std::to_string(messages.size()));
  ordered_json out = ordered_json::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string at = "messages[" + std::to_string(i) + "]";
    const ordered_json& m = messages[i];
    if (!m.is_object()) return invalid_argument(at + " must be an object with role and content");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string() || role->get<std::string>().empty())
      return invalid_argument(at + ".role must be a string (system, user, assistant, tool)");
    ordered_json msg = {{"role", *role}};
    auto content = m.find("content");
    const bool has_tool_calls = m.contains("tool_calls") && !m["tool_calls"].is_null();
    if (content == m.end() || content->is_null()) {
      if (!(role->get<std::string>() == "assistant" && has_tool_calls))
        return invalid_argument(at + ".content is required (a string or a list of text parts)");
      msg["content"] = nullptr;
    } else {
      LONGCTX_ASSIGN_OR_RETURN(msg["content"], content_of(*content, at + ".content"));
    }
    for (const char* key : {"name", "tool_call_id", "reasoning_content"}) {
      auto it = m.find(key);
      if (it == m.end() || it->is_null()) continue;
      if (!it->is_string()) return invalid_argument(at + "." + key + " must be a string");
      msg[key] = *it;
    }
    if (has_tool_calls) {
      LONGCTX_ASSIGN_OR_RETURN(msg["tool_calls"], tool_calls_of(m["tool_calls"], at + ".tool_calls"));
    }
    out.push_back(std::move(msg));
  }
  return out;
}

Result<ordered_json> normalize_tools(const ordered_json& tools) {
  if (!tools.is_array()) return invalid_argument("tools must be a list of tool objects");
  for (size_t i = 0; i < tools.size(); ++i) {
    const std::string at = "tools[" + std::to_string(i) + "]";
    const ordered_json& t = tools[i];
    if (!t.is_object()) return invalid_argument(at + " must be an object");
    if (auto type = t.find("type");
        type != t.end() && !(type->is_string() && type->get<std::string>() == "function"))
      return invalid_argument(at + ".type must be \"function\"");
    auto fn = t.find("function");
    if (fn == t.end() || !fn->is_object()) return invalid_argument(at + ".function must be an object");
    auto name = fn->find("name");
    if (name == fn->end() || !name->is_string())
      return invalid_argument(at + ".function.name must be a string");
    if (auto d = fn->find("description"); d != fn->end() && !d->is_null() && !d->is_string())
      return invalid_argument(at + ".function.description must be a string");
    if (auto p = fn->find("parameters"); p != fn->end() && !p->is_null() && !p->is_object())
      return invalid_argument(at + ".function.parameters must be a JSON schema object");
  }
  return tools;
}

Result<std::vector<int32_t>> chat_prompt_ids(const ordered_json& body, const ChatTemplate& tmpl,
                                             const Tokenizer& tok, int64_t max_messages) {
  auto messages = body.find("messages");
  if (messages == body.end()) return invalid_argument("messages is required");
  LONGCTX_ASSIGN_OR_RETURN(ordered_json msgs, normalize_messages(*messages, max_messages));
  ordered_json extra = ordered_json::object();
  if (auto kw = body.find("chat_template_kwargs"); kw != body.end() && !kw->is_null()) {
    if (!kw->is_object()) return invalid_argument("chat_template_kwargs must be an object");
    extra = *kw;
  }
  if (auto tools = body.find("tools"); tools != body.end() && !tools->is_null()) {
    LONGCTX_ASSIGN_OR_RETURN(extra["tools"], normalize_tools(*tools));
  }
  bool add_generation_prompt = true;
  if (auto it = body.find("add_generation_prompt"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean()) return invalid_argument("add_generation_prompt must be true or false");
    add_generation_prompt = it->get<bool>();
  }
  auto text = tmpl.render(msgs, add_generation_prompt, extra);
  if (!text.is_ok())
    return invalid_argument("messages: the chat template failed: " + text.status().message());
  return tok.encode(*text, /*add_special_tokens=*/false);
}

}  // namespace longctx::server
