#include "text/byte_level.h"

#include <array>

#include "text/tokenizer_utf8.h"

namespace longctx::byte_level {
namespace {

struct Alphabet {
  std::array<char32_t, 256> to_char{};
  std::array<int16_t, 512> to_byte{};  // every alphabet code point is below 0x144
  std::array<std::array<char, 2>, 256> utf8{};
  std::array<uint8_t, 256> utf8_len{};

  Alphabet() {
    // Printable Latin-1 bytes stand for themselves; the rest (controls, space, 0x7F-0xA0,
    // 0xAD) take the code points from 256 up, in byte order.
    auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; };
    to_byte.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const char32_t c = printable(b) ? char32_t(b) : next++;
      to_char[b] = c;
      to_byte[c] = static_cast<int16_t>(b);
      std::string s;
      utf8::append(s, c);
      utf8_len[b] = static_cast<uint8_t>(s.size());
      for (size_t i = 0; i < s.size(); ++i) utf8[b][i] = s[i];
    }
  }
};

const Alphabet& alphabet() {
  static const Alphabet a;
  return a;
}

}  // namespace

char32_t byte_to_char(uint8_t b) { return alphabet().to_char[b]; }

int char_to_byte(char32_t c) {
  if (c >= 512) return -1;
  return alphabet().to_byte[c];
}

void append_encoded(std::string_view bytes, std::string& out) {
  const Alphabet& a = alphabet();
  for (const char ch : bytes) {
    const auto b = static_cast<uint8_t>(ch);
    out.append(a.utf8[b].data(), a.utf8_len[b]);
  }
}

std::string decode_token(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  size_t pos = 0;
  while (pos < token.size()) {
    const char32_t c = utf8::next_code_point(token, pos);
    const int b = char_to_byte(c);
    if (b < 0) return std::string(token);
    out.push_back(static_cast<char>(b));
  }
  return out;
}

}  // namespace longctx::byte_level
