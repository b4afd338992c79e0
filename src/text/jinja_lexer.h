// Lexer: template source -> tokens (text runs, tag delimiters, expression tokens).
//
// Whitespace control happens here, as in jinja2's lexer: `{%-`/`-%}` (and the {{ }} and
// {# #} forms) strip whitespace on that side, trim_blocks drops the first newline after
// a block or comment tag, lstrip_blocks drops spaces and tabs before a block or comment
// tag that starts its line (`{%+` opts out). {% raw %}...{% endraw %} becomes text.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace longctx::jinja {

enum class TokenKind {
  kText,        // template data between tags
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,  // text holds the unescaped value
  kInteger,
  kFloat,
  kOperator,
  kEnd,
};

struct Token {
  TokenKind kind;
  std::string text;
  int line;  // 1-based line of the token's first character
};

struct LexerOptions {
  bool trim_blocks = false;
  bool lstrip_blocks = false;
  bool keep_trailing_newline = false;
};

// The tokens end with one kEnd. Errors name the line ("line 3: unterminated string").
Result<std::vector<Token>> tokenize(std::string_view source, const LexerOptions& options);

}  // namespace longctx::jinja
