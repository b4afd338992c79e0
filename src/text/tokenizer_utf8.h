// UTF-8 helpers shared by the tokenizer pieces: validation, code point iteration and the
// lossy decoding of Rust's String::from_utf8_lossy (which HF decode uses), step by step so
// the incremental detokenizer can hold back an incomplete tail.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace longctx::utf8 {

enum class StepKind {
  kValid,       // a whole, well-formed character of `length` bytes
  kInvalid,     // a maximal ill-formed subpart of `length` bytes: one U+FFFD replaces it
  kIncomplete,  // the rest of the input is a well-formed prefix cut off by its end
};

struct Step {
  StepKind kind;
  size_t length;
};

// Classifies the bytes at s[pos] (pos < s.size()). Follows Unicode's "maximal subpart"
// practice (Unicode §3.9, U+FFFD substitution), as Rust's from_utf8_lossy does.
inline Step step(std::string_view s, size_t pos) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + pos;
  const size_t avail = s.size() - pos;
  const unsigned char b0 = p[0];
  if (b0 < 0x80) return {StepKind::kValid, 1};
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;  // no overlong forms
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;  // no overlong forms
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return {StepKind::kInvalid, 1};
  }
  for (size_t i = 1; i < need; ++i) {
    if (i >= avail) return {StepKind::kIncomplete, avail};
    const unsigned char b = p[i];
    const bool ok = i == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) return {StepKind::kInvalid, i};
  }
  return {StepKind::kValid, need};
}

// Offset of the first byte that does not start a well-formed character, if any.
inline std::optional<size_t> find_invalid(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    // ASCII fast path: eight bytes at a time.
    while (pos + 8 <= s.size()) {
      uint64_t w;
      std::memcpy(&w, s.data() + pos, 8);
      if (w & 0x8080808080808080ULL) break;
      pos += 8;
    }
    if (pos >= s.size()) break;
    const Step st = step(s, pos);
    if (st.kind != StepKind::kValid) return pos;
    pos += st.length;
  }
  return std::nullopt;
}

// Decodes the well-formed character at s[pos] and advances pos past it.
inline char32_t next_code_point(std::string_view s, size_t& pos) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + pos;
  if (p[0] < 0x80) {
    pos += 1;
    return p[0];
  }
  if (p[0] < 0xE0) {
    pos += 2;
    return (char32_t(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
  }
  if (p[0] < 0xF0) {
    pos += 3;
    return (char32_t(p[0] & 0x0F) << 12) | (char32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
  }
  pos += 4;
  return (char32_t(p[0] & 0x07) << 18) | (char32_t(p[1] & 0x3F) << 12) | (char32_t(p[2] & 0x3F) << 6) |
         (p[3] & 0x3F);
}

// Byte length of the well-formed character starting with lead byte b.
inline size_t char_length(unsigned char b) { return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4; }

inline void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

// Appends the lossy decoding of s[0, n) to out and returns how many bytes it consumed.
// With hold_incomplete, a well-formed but unfinished tail is left unconsumed (for
// streaming); otherwise it becomes one U+FFFD, as at the end of from_utf8_lossy.
inline size_t append_lossy(std::string_view s, std::string& out, bool hold_incomplete) {
  size_t pos = 0;
  while (pos < s.size()) {
    const Step st = step(s, pos);
    if (st.kind == StepKind::kValid) {
      out.append(s.data() + pos, st.length);
    } else if (st.kind == StepKind::kIncomplete && hold_incomplete) {
      break;
    } else {
      out.append(kReplacementChar);
    }
    pos += st.length;
  }
  return pos;
}

}  // namespace longctx::utf8
