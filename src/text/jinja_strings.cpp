#include "text/jinja_strings.h"

#include <cctype>

namespace longctx::jinja {

bool is_py_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' ||
         (c >= 0x1c && c <= 0x1f);
}

std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right) {
  auto strip_char = [&](char c) { return chars ? chars->find(c) != std::string::npos : is_py_space(c); };
  // Multi-byte characters in `chars` would need code-point matching; chat templates strip
  // ASCII ('\n', ' '), and byte matching is exact for those.
  size_t begin = 0, end = s.size();
  if (left) {
    while (begin < end && strip_char(s[begin])) ++begin;
  }
  if (right) {
    while (end > begin && strip_char(s[end - 1])) --end;
  }
  return std::string(s.substr(begin, end - begin));
}

std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit,
                                  bool from_right) {
  std::vector<std::string> parts;
  if (!sep) {
    // Whitespace split: runs of whitespace separate, leading/trailing whitespace ignored.
    if (!from_right) {
      size_t i = 0;
      while (true) {
        while (i < s.size() && is_py_space(s[i])) ++i;
        if (i >= s.size()) break;
        if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
          parts.emplace_back(s.substr(i));  // the remainder keeps its trailing whitespace
          break;
        }
        size_t j = i;
        while (j < s.size() && !is_py_space(s[j])) ++j;
        parts.emplace_back(s.substr(i, j - i));
        i = j;
      }
    } else {
      size_t i = s.size();
      std::vector<std::string> rev;
      while (true) {
        while (i > 0 && is_py_space(s[i - 1])) --i;
        if (i == 0) break;
        if (maxsplit >= 0 && static_cast<int64_t>(rev.size()) == maxsplit) {
          rev.emplace_back(s.substr(0, i));  // the remainder keeps its leading whitespace
          break;
        }
        size_t j = i;
        while (j > 0 && !is_py_space(s[j - 1])) --j;
        rev.emplace_back(s.substr(j, i - j));
        i = j;
      }
      parts.assign(rev.rbegin(), rev.rend());
    }
    return parts;
  }
  const std::string& d = *sep;
  if (!from_right) {
    size_t start = 0;
    while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
      const size_t at = s.find(d, start);
      if (at == std::string_view::npos) break;
      parts.emplace_back(s.substr(start, at - start));
      start = at + d.size();
    }
    parts.emplace_back(s.substr(start));
    return parts;
  }
  std::vector<std::string> rev;
  size_t end = s.size();
  while (maxsplit < 0 || static_cast<int64_t>(rev.size()) < maxsplit) {
    if (end < d.size()) break;
    const size_t at = s.rfind(d, end - d.size());
    if (at == std::string_view::npos) break;
    rev.emplace_back(s.substr(at + d.size(), end - at - d.size()));
    end = at;
  }
  rev.emplace_back(s.substr(0, end));
  parts.assign(rev.rbegin(), rev.rend());
  return parts;
}

std::string py_replace(std::string_view s, std::string_view old, std::string_view replacement,
                       int64_t count) {
  std::string out;
  if (old.empty()) {
    // Python inserts the replacement between characters (and at both ends).
    int64_t done = 0;
    size_t i = 0;
    while (true) {
      if (count >= 0 && done >= count) break;
      out += replacement;
      ++done;
      if (i >= s.size()) break;
      size_t len = 1;
      while (i + len < s.size() && (static_cast<unsigned char>(s[i + len]) & 0xc0) == 0x80) ++len;
      out += s.substr(i, len);
      i += len;
    }
    out += s.substr(std::min(i, s.size()));
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t at = s.find(old, start);
    if (at == std::string_view::npos) break;
    out += s.substr(start, at - start);
    out += replacement;
    start = at + old.size();
    ++done;
  }
  out += s.substr(start);
  return out;
}

std::string py_upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string py_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string py_title(std::string_view s) {
  std::string out(s);
  bool prev_cased = false;
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalpha(u)) {
      c = static_cast<char>(prev_cased ? std::tolower(u) : std::toupper(u));
      prev_cased = true;
    } else {
      prev_cased = false;
    }
  }
  return out;
}

std::string py_capitalize(std::string_view s) {
  std::string out = py_lower(s);
  if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
  return out;
}

}  // namespace longctx::jinja
