// The BPE model of tokenizer.json (`model`, type "BPE"): a vocabulary, ranked merges, and
// the merge loop that turns one pre-tokenized word into ids, as HF's BPE does.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace longctx {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class BpeModel {
 public:
  // `spec` is the `model` object; `where` names it in errors ("tokenizer.json: model").
  static Result<BpeModel> from_json(const nlohmann::json& spec, const std::string& where);

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The token string of id, or nullptr when the vocabulary has no such id.
  const std::string* id_to_token(int32_t id) const;
  int64_t max_id() const { return static_cast<int64_t>(id_to_token_.size()) - 1; }

  // Remembers the ids of words already seen; one per encode call (not thread-safe).
  class WordCache {
   public:
    const int32_t* find(std::string_view word, size_t* n) const;
    void insert(std::string_view word, const int32_t* ids, size_t n);

   private:
    std::unordered_map<std::string, std::pair<uint32_t, uint32_t>, StringHash, std::equal_to<>> index_;
    std::vector<int32_t> ids_;
  };

  // Appends the ids of one word (a pre-tokenized piece, non-empty) to out.
  void tokenize(std::string_view word, WordCache* cache, std::vector<int32_t>& out) const;

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  const Merge* find_merge(int32_t a, int32_t b) const;
  std::optional<int32_t> char_to_id(std::string_view ch, char32_t cp) const;
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;

  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_token_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::vector<int32_t> small_char_ids_;  // ids of single-character tokens below U+0800
  std::optional<int32_t> unk_id_;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
};

}  // namespace longctx
