// The `normalizer` section of tokenizer.json: Unicode normalization applied to the text
// outside added tokens before pre-tokenization. Supports NFC, NFD and Sequence.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace longctx {

class Normalizer {
 public:
  // `spec` is the JSON value of the section (null means none); `where` names it in errors,
  // e.g. "tokenizer.json: normalizer".
  static Result<Normalizer> from_json(const nlohmann::json& spec, const std::string& where);

  bool is_identity() const { return ops_.empty(); }
  std::string apply(std::string_view text) const;

 private:
  enum class Op { kNFC, kNFD };
  Status add(const nlohmann::json& spec, const std::string& where);
  std::vector<Op> ops_;
};

namespace unicode {
// Canonical decomposition (NFD) and canonical composition (NFC) of well-formed UTF-8,
// following Unicode Standard Annex #15.
std::string nfd(std::string_view text);
std::string nfc(std::string_view text);
}  // namespace unicode

}  // namespace longctx
