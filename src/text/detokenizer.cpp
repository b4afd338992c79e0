#include "text/tokenizer.h"
#include "text/tokenizer_utf8.h"

namespace longctx {

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {}

std::string IncrementalDetokenizer::push(int32_t id) {
  if (!tokenizer_.has_token(id)) return {};
  if (skip_special_tokens_ && tokenizer_.is_special(id)) return {};
  pending_ += tokenizer_.token_bytes(id);
  // Lossy decoding is decided left to right and only an unfinished tail depends on bytes
  // still to come, so emitting everything before that tail gives, over the whole stream,
  // exactly the decoding of all bytes at once.
  std::string out;
  const size_t used = utf8::append_lossy(pending_, out, /*hold_incomplete=*/true);
  pending_.erase(0, used);
  return out;
}

std::string IncrementalDetokenizer::finish() {
  std::string out;
  utf8::append_lossy(pending_, out, /*hold_incomplete=*/false);
  pending_.clear();
  return out;
}

}  // namespace longctx
