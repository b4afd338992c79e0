// Python's str methods as chat templates use them (strip, split, replace, title, ...),
// on UTF-8 strings. Case mapping is ASCII-only; everything else is byte-exact Python.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace longctx::jinja {

// chars nullopt: strip whitespace (as str.strip()); else strip any of these characters.
std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
// sep nullopt: split on runs of whitespace, dropping empty parts (str.split()).
// maxsplit < 0: no limit. from_right: str.rsplit.
std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit,
                                  bool from_right = false);
// count < 0: replace all.
std::string py_replace(std::string_view s, std::string_view old, std::string_view replacement,
                       int64_t count = -1);
std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
// str.title(): a letter after a non-letter starts a word ("they're" -> "They'Re").
std::string py_title(std::string_view s);
// str.capitalize(): first character upper, the rest lower.
std::string py_capitalize(std::string_view s);
bool is_py_space(char c);

}  // namespace longctx::jinja
