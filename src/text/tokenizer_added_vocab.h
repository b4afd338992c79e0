// Added tokens of tokenizer.json (`added_tokens`): strings matched literally in the text
// before pre-tokenization, as HF's AddedVocabulary does: leftmost-longest matching, with
// lstrip/rstrip/single_word, and `normalized` tokens matched after normalization.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace longctx {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

class AddedVocabulary {
 public:
  // `normalized_contents[i]` is tokens[i].content after the tokenizer's normalizer; the
  // tokens with `normalized` set are matched by that form, in normalized text.
  AddedVocabulary() = default;
  AddedVocabulary(std::vector<AddedToken> tokens, const std::vector<std::string>& normalized_contents);

  struct Segment {
    size_t start = 0, end = 0;
    int32_t id = -1;  // -1: plain text between added tokens
  };
  // Splits text into added-token matches and the plain text around them, in order.
  // `normalized` picks which tokens are looked for: those matched on the raw text (false)
  // or those matched on normalized text (true).
  void split(std::string_view text, bool normalized, std::vector<Segment>& out) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  bool has_normalized_tokens() const { return !tries_[1].nodes.empty(); }

 private:
  // A byte trie over token contents; matching walks it from each start position.
  struct Trie {
    struct Node {
      int32_t token = -1;  // index into tokens_ of the token ending here
      std::vector<std::pair<uint8_t, int32_t>> children;
    };
    std::vector<Node> nodes;          // nodes[0] is the root when non-empty
    std::array<int32_t, 256> root{};  // root children by byte, -1 if none
    void insert(std::string_view key, int32_t token);
    // Index of the token with the longest match at text[pos], and its length.
    std::pair<int32_t, size_t> longest_match(std::string_view text, size_t pos) const;
  };
  std::vector<AddedToken> tokens_;
  Trie tries_[2];  // [0]: matched on raw text, [1]: matched on normalized text
};

}  // namespace longctx
