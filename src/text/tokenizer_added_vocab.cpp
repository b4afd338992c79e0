#include "text/tokenizer_added_vocab.h"

#include "text/tokenizer_utf8.h"

namespace longctx {
namespace {

// Rust's char::is_whitespace: the Unicode White_Space property.
bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// Approximates Rust's char::is_alphanumeric with ASCII letters and digits plus every
// non-ASCII character that is not white space; only single_word tokens consult it.
bool is_word_char(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  return !is_white_space(c);
}

// The code point that ends text (non-empty, well-formed).
char32_t last_code_point(std::string_view text) {
  size_t pos = text.size() - 1;
  while (pos > 0 && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) --pos;
  return utf8::next_code_point(text, pos);
}

}  // namespace

void AddedVocabulary::Trie::insert(std::string_view key, int32_t token) {
  if (nodes.empty()) {
    nodes.emplace_back();
    root.fill(-1);
  }
  int32_t node = 0;
  for (const char ch : key) {
    const auto b = static_cast<uint8_t>(ch);
    int32_t next = -1;
    if (node == 0) {
      next = root[b];
    } else {
      for (const auto& [byte, child] : nodes[node].children)
        if (byte == b) next = child;
    }
    if (next < 0) {
      next = static_cast<int32_t>(nodes.size());
      nodes.emplace_back();
      if (node == 0) root[b] = next;
      nodes[node].children.emplace_back(b, next);
    }
    node = next;
  }
  nodes[node].token = token;
}

std::pair<int32_t, size_t> AddedVocabulary::Trie::longest_match(std::string_view text, size_t pos) const {
  std::pair<int32_t, size_t> best{-1, 0};
  int32_t node = root[static_cast<uint8_t>(text[pos])];
  size_t i = pos + 1;
  while (node >= 0) {
    if (nodes[node].token >= 0) best = {nodes[node].token, i - pos};
    if (i == text.size()) break;
    const auto b = static_cast<uint8_t>(text[i]);
    int32_t next = -1;
    for (const auto& [byte, child] : nodes[node].children)
      if (byte == b) next = child;
    node = next;
    ++i;
  }
  return best;
}

AddedVocabulary::AddedVocabulary(std::vector<AddedToken> tokens,
                                 const std::vector<std::string>& normalized_contents)
    : tokens_(std::move(tokens)) {
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const AddedToken& t = tokens_[i];
    if (t.content.empty()) continue;
    if (t.normalized) {
      if (!normalized_contents[i].empty()) tries_[1].insert(normalized_contents[i], static_cast<int32_t>(i));
    } else {
      tries_[0].insert(t.content, static_cast<int32_t>(i));
    }
  }
}

void AddedVocabulary::split(std::string_view text, bool normalized, std::vector<Segment>& out) const {
  out.clear();
  const Trie& trie = tries_[normalized ? 1 : 0];
  size_t done = 0;  // text before this is already in `out`
  if (!trie.nodes.empty()) {
    size_t pos = 0;
    while (pos < text.size()) {
      // Leftmost-longest: the first position where some token matches, the longest there.
      const auto [index, length] = trie.longest_match(text, pos);
      if (index < 0) {
        ++pos;
        continue;
      }
      const AddedToken& tok = tokens_[index];
      size_t start = pos, stop = pos + length;
      if (tok.single_word) {
        const bool space_before = start == 0 || !is_word_char(last_code_point(text.substr(0, start)));
        size_t after = stop;
        const bool space_after = stop == text.size() || !is_word_char(utf8::next_code_point(text, after));
        if (!space_before || !space_after) {
          // The match is still consumed, as HF's non-overlapping find_iter consumes it.
          pos = stop;
          continue;
        }
      }
      if (tok.lstrip) {
        // Swallow the white space before the token, but not text already taken by the
        // previous match.
        size_t s = start;
        while (s > done) {
          size_t p = s - 1;
          while (p > 0 && (static_cast<unsigned char>(text[p]) & 0xC0) == 0x80) --p;
          size_t q = p;
          if (!is_white_space(utf8::next_code_point(text, q))) break;
          s = p;
        }
        start = s;
      }
      if (tok.rstrip) {
        while (stop < text.size()) {
          size_t q = stop;
          if (!is_white_space(utf8::next_code_point(text, q))) break;
          stop = q;
        }
      }
      if (done < start) out.push_back({done, start, -1});
      out.push_back({start, stop, tok.id});
      done = stop;
      pos = stop;
    }
  }
  if (done < text.size()) out.push_back({done, text.size(), -1});
}

}  // namespace longctx
