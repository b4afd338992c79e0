// GPT-2's byte-level alphabet: every byte maps to one printable code point, so a BPE
// vocabulary over those code points covers any byte string (HF `ByteLevel`).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace longctx::byte_level {

// The code point that stands for byte b.
char32_t byte_to_char(uint8_t b);

// The byte a code point stands for, or -1 when it is not in the alphabet.
int char_to_byte(char32_t c);

// Appends each byte of `bytes` as its alphabet character (UTF-8) to out.
void append_encoded(std::string_view bytes, std::string& out);

// The bytes one token stands for. As HF's ByteLevel decoder does, a token with any
// character outside the alphabet (an added token like "<｜User｜>") is kept verbatim.
std::string decode_token(std::string_view token);

// The regex ByteLevel splits with when use_regex is set (GPT-2's pre-tokenization).
inline constexpr std::string_view kGpt2SplitRegex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace longctx::byte_level
