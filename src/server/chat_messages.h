// Chat messages as clients send them → the JSON a chat template is rendered with.
// Every field a template reads is type-checked first (a malformed message or tool
// object is a 400 naming it, never a crash in the renderer); content given as a list
// of text parts is joined; tool-call arguments sent as a JSON string are parsed into
// an object, as templates expect. Key order is kept (ordered_json) so tool schemas
// print as the client wrote them.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace longctx::server {

// messages must be a non-empty list of at most max_messages message objects.
Result<nlohmann::ordered_json> normalize_messages(const nlohmann::ordered_json& messages,
                                                  int64_t max_messages);
// tools: a list of {"type": "function", "function": {"name", "description"?, "parameters"?}}.
Result<nlohmann::ordered_json> normalize_tools(const nlohmann::ordered_json& tools);

// Renders body["messages"] (with body's tools, chat_template_kwargs and
// add_generation_prompt) and tokenizes the text without adding special tokens (the
// template has its own).
Result<std::vector<int32_t>> chat_prompt_ids(const nlohmann::ordered_json& body, const ChatTemplate& tmpl,
                                             const Tokenizer& tok, int64_t max_messages);

}  // namespace longctx::server
