#include "text/tokenizer_normalizer.h"

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "text/tokenizer_utf8.h"

namespace longctx {
namespace unicode {
namespace {

#include "text/tokenizer_nfc_tables.inc"

// Hangul syllables decompose and compose arithmetically (Unicode §3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
                   kSCount = kLCount * kNCount;

// No code point below U+0300 has a combining class, and none of them composes with a later
// character, so text made only of such code points is already in NFC. (NFD differs from
// U+00C0 up: the precomposed Latin-1 letters.)
constexpr char32_t kFirstCombining = 0x300;

int combining_class(char32_t cp) {
  if (cp < kFirstCombining) return 0;
  const uint32_t key = cp << 8;
  const uint32_t* end = kCombiningClass + std::size(kCombiningClass);
  const uint32_t* it = std::lower_bound(kCombiningClass, end, key);
  if (it != end && (*it >> 8) == cp) return static_cast<int>(*it & 0xFF);
  return 0;
}

void decompose_into(char32_t cp, std::u32string& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const char32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out.push_back(kTBase + s % kTCount);
    return;
  }
  if (cp >= 0xC0) {
    const auto* end = kDecompositions + std::size(kDecompositions);
    const auto* it = std::lower_bound(kDecompositions, end, cp,
                                      [](const CanonicalDecomposition& d, char32_t c) { return d.cp < c; });
    if (it != end && it->cp == cp) {
      out.append(kDecompositionPool + it->offset, kDecompositionPool + it->offset + it->length);
      return;
    }
  }
  out.push_back(cp);
}

// Returns the primary composite of (a, b), or 0 when there is none.
char32_t compose_pair(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount)
    return a + (b - kTBase);
  const auto* end = kCompositions + std::size(kCompositions);
  const auto* it =
      std::lower_bound(kCompositions, end, std::pair{a, b}, [](const CanonicalComposition& c, auto key) {
        return c.first < key.first || (c.first == key.first && c.second < key.second);
      });
  if (it != end && it->first == a && it->second == b) return it->composite;
  return 0;
}

// Full canonical decomposition followed by the canonical ordering algorithm.
std::u32string decompose(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) decompose_into(utf8::next_code_point(text, pos), out);
  // Canonical ordering: a stable sort by combining class of each run of non-starters.
  for (size_t i = 0; i < out.size();) {
    if (combining_class(out[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < out.size() && combining_class(out[j]) != 0) ++j;
    if (j - i > 1) {
      std::stable_sort(out.begin() + i, out.begin() + j,
                       [](char32_t x, char32_t y) { return combining_class(x) < combining_class(y); });
    }
    i = j;
  }
  return out;
}

std::string to_utf8(const std::u32string& cps) {
  std::string out;
  out.reserve(cps.size());
  for (const char32_t c : cps) utf8::append(out, c);
  return out;
}

bool all_below(std::string_view text, char32_t bound) {
  size_t pos = 0;
  while (pos < text.size()) {
    if (static_cast<unsigned char>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    if (utf8::next_code_point(text, pos) >= bound) return false;
  }
  return true;
}

}  // namespace

std::string nfd(std::string_view text) {
  if (all_below(text, 0xC0)) return std::string(text);
  return to_utf8(decompose(text));
}

std::string nfc(std::string_view text) {
  if (all_below(text, kFirstCombining)) return std::string(text);
  std::u32string d = decompose(text);
  // Canonical composition: each character composes with the last starter unless blocked,
  // i.e. unless a character between them has a combining class of 0 or >= its own.
  // last_class is -1 while nothing follows the starter in the output.
  std::u32string out;
  out.reserve(d.size());
  size_t starter = std::u32string::npos;
  int last_class = -1;
  for (const char32_t c : d) {
    const int cc = combining_class(c);
    if (starter != std::u32string::npos && (last_class == -1 || last_class < cc)) {
      if (const char32_t composite = compose_pair(out[starter], c)) {
        out[starter] = composite;
        continue;
      }
    }
    if (cc == 0) {
      starter = out.size();
      last_class = -1;
    } else {
      last_class = cc;
    }
    out.push_back(c);
  }
  return to_utf8(out);
}

}  // namespace unicode

Result<Normalizer> Normalizer::from_json(const nlohmann::json& spec, const std::string& where) {
  Normalizer n;
  if (!spec.is_null()) LONGCTX_RETURN_IF_ERROR(n.add(spec, where));
  return n;
}

Status Normalizer::add(const nlohmann::json& spec, const std::string& where) {
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string())
    return invalid_argument(where + ": expected an object with a string \"type\"");
  const std::string type = spec["type"].get<std::string>();
  if (type == "NFC") {
    ops_.push_back(Op::kNFC);
  } else if (type == "NFD") {
    ops_.push_back(Op::kNFD);
  } else if (type == "Sequence") {
    const auto it = spec.find("normalizers");
    if (it == spec.end() || !it->is_array())
      return invalid_argument(where + ".normalizers: expected an array");
    for (size_t i = 0; i < it->size(); ++i)
      LONGCTX_RETURN_IF_ERROR(add((*it)[i], where + ".normalizers[" + std::to_string(i) + "]"));
  } else {
    return unimplemented(where + ": normalizer type '" + type +
                         "' is not supported (supported: NFC, NFD, Sequence)");
  }
  return Status::ok();
}

std::string Normalizer::apply(std::string_view text) const {
  std::string s(text);
  for (const Op op : ops_) s = op == Op::kNFC ? unicode::nfc(s) : unicode::nfd(s);
  return s;
}

}  // namespace longctx
