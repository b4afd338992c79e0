#include "text/jinja_lexer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "text/jinja_error.h"

namespace longctx::jinja {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || (c & 0x80); }
bool is_name_char(char c) { return is_name_start(c) || std::isdigit(static_cast<unsigned char>(c)); }
bool is_digit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }

std::string_view rstrip_view(std::string_view s) {
  size_t end = s.size();
  while (end > 0 && is_space(s[end - 1])) --end;
  return s.substr(0, end);
}

// \r\n and \r become \n (jinja2 normalises newlines before lexing); one trailing
// newline goes unless kept.
std::string normalize_newlines(std::string_view source, bool keep_trailing_newline) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!keep_trailing_newline && !out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// Operators, longest first so "//" wins over "/".
constexpr std::string_view kOperators[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/",
                                           "*",  "%",  "~",  "[",  "]",  "(",  ")", "{", "}",
                                           ">",  "<",  "=",  ".",  ":",  "|",  ",", ";"};

class Lexer {
 public:
  Lexer(std::string source, const LexerOptions& options) : src_(std::move(source)), opt_(options) {}

  std::vector<Token> run() {
    while (pos_ < src_.size()) {
      const size_t tag = find_tag(pos_);
      if (tag == std::string::npos) {
        emit_text(std::string_view(src_).substr(pos_), line_);
        break;
      }
      lex_tag(tag);
    }
    tokens_.push_back({TokenKind::kEnd, "", line_});
    return std::move(tokens_);
  }

 private:
  size_t find_tag(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    }
    return std::string::npos;
  }

  void emit_text(std::string_view text, int line) {
    if (!text.empty()) tokens_.push_back({TokenKind::kText, std::string(text), line});
  }

  int count_newlines(size_t from, size_t to) const {
    return static_cast<int>(std::count(src_.begin() + from, src_.begin() + to, '\n'));
  }

  // Applies `{%-` / lstrip_blocks to the text before a tag and emits it.
  void emit_text_before_tag(size_t tag, char sign, bool is_variable) {
    std::string_view text = std::string_view(src_).substr(pos_, tag - pos_);
    const int text_line = line_;
    line_ += count_newlines(pos_, tag);
    if (sign == '-') {
      text = rstrip_view(text);
    } else if (sign != '+' && opt_.lstrip_blocks && !is_variable) {
      // Spaces/tabs between the start of the line and the tag go.
      const size_t nl = text.rfind('\n');
      const size_t line_pos = nl == std::string_view::npos ? 0 : nl + 1;
      if (line_pos > 0 || line_starting_) {
        const std::string_view tail = text.substr(line_pos);
        if (!tail.empty() && std::all_of(tail.begin(), tail.end(), is_space)) text = text.substr(0, line_pos);
      }
    }
    emit_text(text, text_line);
  }

  // Moves past a tag end of `len` characters; sign '-' eats following whitespace and,
  // for block-like tags, trim_blocks eats one newline.
  void finish_tag(size_t end_pos, char sign, bool block_like) {
    pos_ = end_pos;
    if (sign == '-') {
      while (pos_ < src_.size() && is_space(src_[pos_])) {
        if (src_[pos_] == '\n') ++line_;
        ++pos_;
      }
    } else if (sign != '+' && block_like && opt_.trim_blocks && pos_ < src_.size() && src_[pos_] == '\n') {
      ++pos_;
      ++line_;
    }
    line_starting_ = pos_ > 0 && src_[pos_ - 1] == '\n';
  }

  void lex_tag(size_t tag) {
    const char kind = src_[tag + 1];
    const char sign =
        tag + 2 < src_.size() && (src_[tag + 2] == '-' || src_[tag + 2] == '+') ? src_[tag + 2] : 0;
    const size_t body = tag + 2 + (sign ? 1 : 0);
    if (kind == '%' && lex_raw(tag, sign, body)) return;
    emit_text_before_tag(tag, sign, kind == '{');
    if (kind == '#') {
      lex_comment(body);
      return;
    }
    tokens_.push_back({kind == '{' ? TokenKind::kVarBegin : TokenKind::kBlockBegin, "", line_});
    pos_ = body;
    lex_expression(kind == '{' ? '}' : '%');
  }

  void lex_comment(size_t body) {
    const size_t end = src_.find("#}", body);
    if (end == std::string::npos) throw Error("missing end of comment tag '#}'", line_);
    char sign = 0;
    if (end > body && (src_[end - 1] == '-' || src_[end - 1] == '+')) sign = src_[end - 1];
    line_ += count_newlines(pos_, end);
    finish_tag(end + 2, sign, /*block_like=*/true);
  }

  // {% raw %}...{% endraw %}: returns false when the block tag is not `raw`.
  bool lex_raw(size_t tag, char sign, size_t body) {
    auto match_keyword_tag = [&](size_t at, std::string_view word, size_t& after, char& end_sign) {
      size_t i = at;
      while (i < src_.size() && is_space(src_[i])) ++i;
      if (src_.compare(i, word.size(), word) != 0) return false;
      i += word.size();
      while (i < src_.size() && is_space(src_[i])) ++i;
      end_sign = 0;
      if (i < src_.size() && (src_[i] == '-' || src_[i] == '+')) end_sign = src_[i++];
      if (src_.compare(i, 2, "%}") != 0) return false;
      after = i + 2;
      return true;
    };
    size_t after = 0;
    char end_sign = 0;
    if (!match_keyword_tag(body, "raw", after, end_sign) || end_sign == '+') return false;
    emit_text_before_tag(tag, sign, false);
    const int raw_line = line_;
    line_ += count_newlines(tag, after);
    pos_ = after;
    if (end_sign == '-') finish_tag(after, '-', true);
    // The raw text runs to the first `{%[-+]? endraw [-+]?%}`.
    for (size_t i = src_.find("{%", pos_); i != std::string::npos; i = src_.find("{%", i + 1)) {
      char close_sign = i + 2 < src_.size() && (src_[i + 2] == '-' || src_[i + 2] == '+') ? src_[i + 2] : 0;
      size_t close_after = 0;
      char close_end_sign = 0;
      if (!match_keyword_tag(i + 2 + (close_sign ? 1 : 0), "endraw", close_after, close_end_sign)) continue;
      emit_text_before_tag(i, close_sign, false);
      line_ += count_newlines(i, close_after);
      finish_tag(close_after, close_end_sign, true);
      return true;
    }
    throw Error("missing end of raw directive ({% endraw %})", raw_line);
  }

  // Tokens inside {{ }} or {% %} up to the closing delimiter at bracket depth 0.
  void lex_expression(char close) {
    std::vector<char> brackets;
    const int open_line = line_;
    while (true) {
      while (pos_ < src_.size() && is_space(src_[pos_])) {
        if (src_[pos_] == '\n') ++line_;
        ++pos_;
      }
      if (pos_ >= src_.size()) {
        throw Error(
            fmt::format("unexpected end of template, expected '{}}}' to close the tag opened on line {}",
                        close == '}' ? "}" : "%", open_line),
            line_);
      }
      if (brackets.empty()) {
        char sign = 0;
        size_t at = pos_;
        if (src_[at] == '-' || (src_[at] == '+' && close == '%')) sign = src_[at++];
        if (src_.compare(at, 2, close == '}' ? "}}" : "%}") == 0) {
          tokens_.push_back({close == '}' ? TokenKind::kVarEnd : TokenKind::kBlockEnd, "", line_});
          finish_tag(at + 2, sign, close == '%');
          return;
        }
      }
      lex_token(brackets);
    }
  }

  void lex_token(std::vector<char>& brackets) {
    const char c = src_[pos_];
    const size_t start = pos_;
    if (c == '\'' || c == '"') {
      lex_string();
      return;
    }
    if (is_digit(c)) {
      lex_number();
      return;
    }
    if (is_name_start(c)) {
      while (pos_ < src_.size() && is_name_char(src_[pos_])) ++pos_;
      tokens_.push_back({TokenKind::kName, src_.substr(start, pos_ - start), line_});
      return;
    }
    for (std::string_view op : kOperators) {
      if (src_.compare(pos_, op.size(), op) != 0) continue;
      if (op == "(" || op == "[" || op == "{") {
        brackets.push_back(op == "(" ? ')' : op == "[" ? ']' : '}');
      } else if (op == ")" || op == "]" || op == "}") {
        if (brackets.empty()) throw Error(fmt::format("unexpected '{}'", op), line_);
        if (brackets.back() != op[0]) {
          throw Error(fmt::format("unexpected '{}', expected '{}'", op, brackets.back()), line_);
        }
        brackets.pop_back();
      }
      pos_ += op.size();
      tokens_.push_back({TokenKind::kOperator, std::string(op), line_});
      return;
    }
    throw Error(fmt::format("unexpected character '{}'", c), line_);
  }

  // Python-style escapes, as jinja2 decodes string literals ("unicode-escape").
  void lex_string() {
    const char quote = src_[pos_];
    const int start_line = line_;
    std::string value;
    ++pos_;
    while (true) {
      if (pos_ >= src_.size()) throw Error("unterminated string literal", start_line);
      const char c = src_[pos_++];
      if (c == quote) break;
      if (c == '\n') ++line_;
      if (c != '\\') {
        value += c;
        continue;
      }
      if (pos_ >= src_.size()) throw Error("unterminated string literal", start_line);
      const char e = src_[pos_++];
      switch (e) {
        case 'n': value += '\n'; break;
        case 't': value += '\t'; break;
        case 'r': value += '\r'; break;
        case 'b': value += '\b'; break;
        case 'f': value += '\f'; break;
        case 'v': value += '\v'; break;
        case 'a': value += '\a'; break;
        case '\\': value += '\\'; break;
        case '\'': value += '\''; break;
        case '"': value += '"'; break;
        case '\n': ++line_; break;  // line continuation
        case 'x': append_code_point(value, read_hex(2, start_line)); break;
        case 'u': append_code_point(value, read_hex(4, start_line)); break;
        case 'U': append_code_point(value, read_hex(8, start_line)); break;
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = e - '0';
            for (int k = 0; k < 2 && pos_ < src_.size() && src_[pos_] >= '0' && src_[pos_] <= '7'; ++k) {
              cp = cp * 8 + (src_[pos_++] - '0');
            }
            append_code_point(value, cp);
          } else {
            value += '\\';  // unknown escapes stay as written, as in Python
            value += e;
            if (e == '\n') ++line_;
          }
      }
    }
    tokens_.push_back({TokenKind::kString, std::move(value), start_line});
  }

  uint32_t read_hex(int digits, int line) {
    uint32_t cp = 0;
    for (int k = 0; k < digits; ++k) {
      if (pos_ >= src_.size() || !std::isxdigit(static_cast<unsigned char>(src_[pos_]))) {
        throw Error("truncated \\x/\\u escape in string literal", line);
      }
      const char h = static_cast<char>(std::tolower(static_cast<unsigned char>(src_[pos_++])));
      cp = cp * 16 + static_cast<uint32_t>(h <= '9' ? h - '0' : h - 'a' + 10);
    }
    if (cp > 0x10ffff) throw Error("escape outside the Unicode range in string literal", line);
    return cp;
  }

  static void append_code_point(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  // Integers (with _ separators; 0x/0o/0b) and floats ("1.5", "1e3", "2.5e-3"). After
  // a '.', digits are an integer (`x.0.1` is two item lookups), as in jinja2.
  void lex_number() {
    const size_t start = pos_;
    auto digits = [&] {
      while (pos_ < src_.size() && (is_digit(src_[pos_]) || (src_[pos_] == '_' && pos_ + 1 < src_.size() &&
                                                             is_digit(src_[pos_ + 1])))) {
        ++pos_;
      }
    };
    if (src_[pos_] == '0' && pos_ + 1 < src_.size() && std::strchr("xXoObB", src_[pos_ + 1]) &&
        src_[pos_ + 1]) {
      const int base = std::tolower(src_[pos_ + 1]) == 'x' ? 16 : std::tolower(src_[pos_ + 1]) == 'o' ? 8 : 2;
      pos_ += 2;
      int64_t v = 0;
      size_t n = 0;
      for (; pos_ < src_.size(); ++pos_) {
        const char h = static_cast<char>(std::tolower(static_cast<unsigned char>(src_[pos_])));
        if (h == '_') continue;
        const int d = is_digit(h) ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : 99;
        if (d >= base) break;
        v = v * base + d;
        ++n;
      }
      if (n == 0) throw Error("malformed integer literal", line_);
      tokens_.push_back({TokenKind::kInteger, std::to_string(v), line_});
      return;
    }
    digits();
    bool is_float = false;
    const bool after_dot = start > 0 && src_[start - 1] == '.';
    if (!after_dot && pos_ + 1 < src_.size() && src_[pos_] == '.' && is_digit(src_[pos_ + 1])) {
      ++pos_;
      digits();
      is_float = true;
    }
    if (!after_dot && pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t p = pos_ + 1;
      if (p < src_.size() && (src_[p] == '+' || src_[p] == '-')) ++p;
      if (p < src_.size() && is_digit(src_[p])) {
        pos_ = p;
        digits();
        is_float = true;
      }
    }
    std::string text = src_.substr(start, pos_ - start);
    text.erase(std::remove(text.begin(), text.end(), '_'), text.end());
    tokens_.push_back({is_float ? TokenKind::kFloat : TokenKind::kInteger, std::move(text), line_});
  }

  std::string src_;
  LexerOptions opt_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;  // the previous tag consumed a newline (or we are at the start)
};

}  // namespace

Result<std::vector<Token>> tokenize(std::string_view source, const LexerOptions& options) {
  try {
    return Lexer(normalize_newlines(source, options.keep_trailing_newline), options).run();
  } catch (const Error& e) {
    return invalid_argument(fmt::format("template syntax error at line {}: {}", e.line(), e.what()));
  }
}

}  // namespace longctx::jinja
