// Text <-> token ids for Hugging Face tokenizer.json files with a byte-level BPE model
// (Llama 3, Qwen, DeepSeek), encoding exactly as HF tokenizers 0.23 does:
//   added tokens split out -> normalizer -> pre_tokenizer -> BPE -> post_processor.
// A Tokenizer is immutable once loaded; copies share it, and any number of threads may
// encode and decode at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace longctx {

class Tokenizer {
 public:
  // Reads DIR/tokenizer.json (required) and DIR/tokenizer_config.json (optional: the bos
  // and eos token strings, add_bos_token/add_eos_token). NotFound names a missing file;
  // DataLoss/InvalidArgument name the file and JSON field of bad content; Unimplemented
  // names a component type this tokenizer does not support.
  static Result<Tokenizer> load(const std::filesystem::path& dir);

  // Invalid UTF-8 -> InvalidArgument naming the byte offset. Added tokens in the text are
  // matched first (honouring lstrip/rstrip/single_word/normalized). add_special_tokens
  // applies the post_processor's TemplateProcessing (e.g. Llama 3's BOS); a tokenizer
  // without one gets BOS/EOS from tokenizer_config's add_bos_token/add_eos_token, as
  // transformers does.
  Result<std::vector<int32_t>> encode(std::string_view text, bool add_special_tokens = false) const;

  // Ids outside [0, vocab_size()) or without a token -> InvalidArgument. Ill-formed UTF-8
  // in the bytes becomes U+FFFD as in HF decode. No clean_up_tokenization_spaces.
  Result<std::string> decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  // Raw bytes of one token after byte-level decoding (may be a partial UTF-8 sequence);
  // empty for an id without a token.
  std::string token_bytes(int32_t id) const;
  // Whether id has a token (in range and not a hole in the vocabulary).
  bool has_token(int32_t id) const;

  int64_t vocab_size() const;  // max id + 1 over the vocabulary and added tokens
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::optional<int32_t> bos_token_id() const;
  std::optional<int32_t> eos_token_id() const;
  std::string bos_token() const;  // from tokenizer_config.json; empty if none
  std::string eos_token() const;
  bool is_special(int32_t id) const;  // an added token marked "special"

  struct Impl;  // defined in tokenizer.cpp; public only so its helpers can fill it

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

// Streams the text of generated ids without ever emitting part of a UTF-8 character:
// push(id) returns the newly completed text (possibly empty, holding back an unfinished
// character); finish() flushes the rest, an unfinished character becoming U+FFFD as HF
// decode does. The concatenation of all outputs equals decode(ids, skip_special_tokens).
// Ids without a token (e.g. from a model's padded vocabulary) are ignored, as HF does.
// Keeps its own reference to the tokenizer; one per sequence, not thread-safe.
class IncrementalDetokenizer {
 public:
  explicit IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens = true);
  std::string push(int32_t id);
  std::string finish();

 private:
  Tokenizer tokenizer_;
  bool skip_special_tokens_;
  std::string pending_;  // bytes of an unfinished character
};

}  // namespace longctx
