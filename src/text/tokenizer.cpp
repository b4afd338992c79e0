#include "text/tokenizer.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "text/bpe_model.h"
#include "text/byte_level.h"
#include "text/tokenizer_added_vocab.h"
#include "text/tokenizer_normalizer.h"
#include "text/tokenizer_pretokenizer.h"
#include "text/tokenizer_utf8.h"

namespace longctx {

using json = nlohmann::json;

// One element of a TemplateProcessing "single" template: special ids, or the sequence.
struct TemplatePiece {
  bool is_sequence = false;
  std::vector<int32_t> ids;
};

struct Tokenizer::Impl {
  BpeModel model;
  AddedVocabulary added;
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  std::vector<std::vector<TemplatePiece>> templates;  // applied in order with add_special_tokens
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> added_ids;
  // By id: the decoded bytes, whether a token exists, whether it is a special added token.
  std::vector<std::string> bytes;
  std::vector<uint8_t> exists;
  std::vector<uint8_t> special;
  std::string bos, eos;
  bool add_bos = false, add_eos = false;  // tokenizer_config; used only without a template
};

namespace {

Result<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot open " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return data_loss(path.string() + ": read failed");
  return std::move(ss).str();
}

Result<json> parse_json_file(const std::filesystem::path& path) {
  LONGCTX_ASSIGN_OR_RETURN(std::string text, read_file(path));
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    return data_loss(path.string() + ": not valid JSON: " + e.what());
  }
}

Result<bool> get_bool(const json& obj, const char* key, bool fallback, const std::string& where) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) return invalid_argument(where + "." + key + ": expected true or false");
  return it->get<bool>();
}

Status parse_post_processor(const json& spec, const std::string& where, Tokenizer::Impl& impl) {
  if (spec.is_null()) return Status::ok();
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string())
    return invalid_argument(where + ": expected an object with a string \"type\"");
  const std::string type = spec["type"].get<std::string>();
  if (type == "ByteLevel") return Status::ok();  // it only trims offsets; ids are unchanged
  if (type == "Sequence") {
    const auto it = spec.find("processors");
    if (it == spec.end() || !it->is_array())
      return invalid_argument(where + ".processors: expected an array");
    for (size_t i = 0; i < it->size(); ++i)
      LONGCTX_RETURN_IF_ERROR(
          parse_post_processor((*it)[i], where + ".processors[" + std::to_string(i) + "]", impl));
    return Status::ok();
  }
  if (type != "TemplateProcessing")
    return unimplemented(where + ": post_processor type '" + type +
                         "' is not supported (supported: TemplateProcessing, ByteLevel, Sequence)");
  const auto single = spec.find("single");
  if (single == spec.end() || !single->is_array())
    return invalid_argument(where + ".single: expected an array");
  const auto specials = spec.find("special_tokens");
  std::vector<TemplatePiece> pieces;
  for (size_t i = 0; i < single->size(); ++i) {
    const json& item = (*single)[i];
    const std::string field = where + ".single[" + std::to_string(i) + "]";
    if (item.contains("Sequence")) {
      pieces.push_back({true, {}});
    } else if (item.contains("SpecialToken") && item["SpecialToken"].contains("id") &&
               item["SpecialToken"]["id"].is_string()) {
      const std::string name = item["SpecialToken"]["id"].get<std::string>();
      if (specials == spec.end() || !specials->contains(name) || !(*specials)[name].contains("ids") ||
          !(*specials)[name]["ids"].is_array())
        return invalid_argument(field + ": special token '" + name + "' has no ids in " + where +
                                ".special_tokens");
      TemplatePiece piece;
      for (const json& id : (*specials)[name]["ids"]) {
        if (!id.is_number_integer())
          return invalid_argument(where + ".special_tokens." + name + ".ids: expected integers");
        piece.ids.push_back(id.get<int32_t>());
      }
      pieces.push_back(std::move(piece));
    } else {
      return invalid_argument(field +
                              ": expected {\"SpecialToken\": {\"id\": ...}} or {\"Sequence\": {...}}");
    }
  }
  impl.templates.push_back(std::move(pieces));
  return Status::ok();
}

Status parse_decoder(const json& spec, const std::string& where) {
  // Only ByteLevel: every supported tokenizer maps bytes to GPT-2's alphabet.
  if (spec.is_object() && spec.contains("type") && spec["type"] == "ByteLevel") return Status::ok();
  const std::string type = spec.is_object() && spec.contains("type") ? spec["type"].dump() : spec.dump();
  return unimplemented(where + ": decoder " + type + " is not supported (supported: ByteLevel)");
}

Result<std::vector<AddedToken>> parse_added_tokens(const json& spec, const std::string& where) {
  std::vector<AddedToken> tokens;
  if (spec.is_null()) return tokens;
  if (!spec.is_array()) return invalid_argument(where + ": expected an array");
  for (size_t i = 0; i < spec.size(); ++i) {
    const json& t = spec[i];
    const std::string field = where + "[" + std::to_string(i) + "]";
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || t["id"].get<int64_t>() < 0 ||
        t["id"].get<int64_t>() > INT32_MAX || !t.contains("content") || !t["content"].is_string())
      return invalid_argument(field + ": expected {\"id\": <non-negative int>, \"content\": <string>, ...}");
    AddedToken tok;
    tok.id = static_cast<int32_t>(t["id"].get<int64_t>());
    tok.content = t["content"].get<std::string>();
    LONGCTX_ASSIGN_OR_RETURN(tok.special, get_bool(t, "special", false, field));
    LONGCTX_ASSIGN_OR_RETURN(tok.lstrip, get_bool(t, "lstrip", false, field));
    LONGCTX_ASSIGN_OR_RETURN(tok.rstrip, get_bool(t, "rstrip", false, field));
    LONGCTX_ASSIGN_OR_RETURN(tok.single_word, get_bool(t, "single_word", false, field));
    LONGCTX_ASSIGN_OR_RETURN(tok.normalized, get_bool(t, "normalized", !tok.special, field));
    tokens.push_back(std::move(tok));
  }
  return tokens;
}

// bos_token/eos_token in tokenizer_config.json: a string, {"content": ...} or null.
Result<std::string> config_token(const json& config, const char* key, const std::string& where) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::string();
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  return invalid_argument(where + "." + key + ": expected a string, {\"content\": <string>} or null");
}

Result<std::shared_ptr<Tokenizer::Impl>> build(const json& spec, const std::string& file, const json* config,
                                               const std::string& config_file) {
  auto impl = std::make_shared<Tokenizer::Impl>();
  if (!spec.is_object()) return invalid_argument(file + ": expected a JSON object at the top level");
  if (!spec.contains("model")) return invalid_argument(file + ": model: missing");
  LONGCTX_ASSIGN_OR_RETURN(impl->model, BpeModel::from_json(spec["model"], file + ": model"));
  const json null_value;
  auto section = [&](const char* key) -> const json& {
    const auto it = spec.find(key);
    return it == spec.end() ? null_value : *it;
  };
  LONGCTX_ASSIGN_OR_RETURN(impl->normalizer,
                           Normalizer::from_json(section("normalizer"), file + ": normalizer"));
  LONGCTX_ASSIGN_OR_RETURN(impl->pre_tokenizer,
                           PreTokenizer::from_json(section("pre_tokenizer"), file + ": pre_tokenizer"));
  LONGCTX_RETURN_IF_ERROR(parse_post_processor(section("post_processor"), file + ": post_processor", *impl));
  LONGCTX_RETURN_IF_ERROR(parse_decoder(section("decoder"), file + ": decoder"));
  LONGCTX_ASSIGN_OR_RETURN(std::vector<AddedToken> added,
                           parse_added_tokens(section("added_tokens"), file + ": added_tokens"));

  // Tables by id over the model vocabulary and the added tokens (which win, as in HF).
  int64_t vocab_size = impl->model.max_id() + 1;
  for (const AddedToken& t : added) vocab_size = std::max<int64_t>(vocab_size, int64_t{t.id} + 1);
  impl->bytes.resize(static_cast<size_t>(vocab_size));
  impl->exists.assign(static_cast<size_t>(vocab_size), 0);
  impl->special.assign(static_cast<size_t>(vocab_size), 0);
  for (int32_t id = 0; id <= impl->model.max_id(); ++id) {
    if (const std::string* tok = impl->model.id_to_token(id)) {
      impl->bytes[id] = byte_level::decode_token(*tok);
      impl->exists[id] = 1;
    }
  }
  std::vector<std::string> normalized_contents;
  for (const AddedToken& t : added) {
    impl->bytes[t.id] = byte_level::decode_token(t.content);
    impl->exists[t.id] = 1;
    impl->special[t.id] = t.special ? 1 : 0;
    impl->added_ids.insert_or_assign(t.content, t.id);
    normalized_contents.push_back(t.normalized ? impl->normalizer.apply(t.content) : t.content);
  }
  impl->added = AddedVocabulary(std::move(added), normalized_contents);

  if (config != nullptr) {
    if (!config->is_object())
      return invalid_argument(config_file + ": expected a JSON object at the top level");
    LONGCTX_ASSIGN_OR_RETURN(impl->bos, config_token(*config, "bos_token", config_file));
    LONGCTX_ASSIGN_OR_RETURN(impl->eos, config_token(*config, "eos_token", config_file));
    LONGCTX_ASSIGN_OR_RETURN(impl->add_bos, get_bool(*config, "add_bos_token", false, config_file));
    LONGCTX_ASSIGN_OR_RETURN(impl->add_eos, get_bool(*config, "add_eos_token", false, config_file));
  }
  return impl;
}

// Receives pre-tokenized words and appends their BPE ids.
class BpeSink final : public PreTokenizer::WordSink {
 public:
  BpeSink(const BpeModel& model, std::vector<int32_t>& out) : model_(model), out_(out) {}
  void word(std::string_view w) override { model_.tokenize(w, &cache_, out_); }

 private:
  const BpeModel& model_;
  BpeModel::WordCache cache_;
  std::vector<int32_t>& out_;
};

}  // namespace

Result<Tokenizer> Tokenizer::load(const std::filesystem::path& dir) {
  const std::filesystem::path file = dir / "tokenizer.json";
  if (!std::filesystem::is_regular_file(file)) return not_found(file.string() + ": tokenizer.json not found");
  LONGCTX_ASSIGN_OR_RETURN(json spec, parse_json_file(file));
  const std::filesystem::path config_file = dir / "tokenizer_config.json";
  std::optional<json> config;
  if (std::filesystem::is_regular_file(config_file)) {
    LONGCTX_ASSIGN_OR_RETURN(config, parse_json_file(config_file));
  }
  try {
    LONGCTX_ASSIGN_OR_RETURN(std::shared_ptr<Impl> impl,
                             build(spec, file.string(), config ? &*config : nullptr, config_file.string()));
    return Tokenizer(std::move(impl));
  } catch (const json::exception& e) {
    // A field of an unexpected JSON type that the checks above did not anticipate.
    return data_loss(file.string() + ": unexpected content: " + e.what());
  }
}

Result<std::vector<int32_t>> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  if (const auto bad = utf8::find_invalid(text))
    return invalid_argument("encode: text is not valid UTF-8 at byte offset " + std::to_string(*bad));
  const Impl& im = *impl_;
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  const auto scratch = im.pre_tokenizer.make_scratch();
  BpeSink sink(im.model, ids);
  auto encode_plain = [&](std::string_view piece) { return im.pre_tokenizer.split(piece, *scratch, sink); };

  std::vector<AddedVocabulary::Segment> segments, inner;
  im.added.split(text, /*normalized=*/false, segments);
  for (const auto& seg : segments) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    std::string_view piece = text.substr(seg.start, seg.end - seg.start);
    std::string normalized;
    if (!im.normalizer.is_identity()) {
      normalized = im.normalizer.apply(piece);
      piece = normalized;
    }
    if (!im.added.has_normalized_tokens()) {
      LONGCTX_RETURN_IF_ERROR(encode_plain(piece));
      continue;
    }
    im.added.split(piece, /*normalized=*/true, inner);
    for (const auto& s : inner) {
      if (s.id >= 0) {
        ids.push_back(s.id);
      } else {
        LONGCTX_RETURN_IF_ERROR(encode_plain(piece.substr(s.start, s.end - s.start)));
      }
    }
  }

  if (add_special_tokens) {
    if (!im.templates.empty()) {
      for (const auto& tmpl : im.templates) {
        std::vector<int32_t> wrapped;
        wrapped.reserve(ids.size() + 4);
        for (const TemplatePiece& p : tmpl) {
          if (p.is_sequence) {
            wrapped.insert(wrapped.end(), ids.begin(), ids.end());
          } else {
            wrapped.insert(wrapped.end(), p.ids.begin(), p.ids.end());
          }
        }
        ids = std::move(wrapped);
      }
    } else {
      if (const auto bos = bos_token_id(); im.add_bos && bos) ids.insert(ids.begin(), *bos);
      if (const auto eos = eos_token_id(); im.add_eos && eos) ids.push_back(*eos);
    }
  }
  return ids;
}

Result<std::string> Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  const Impl& im = *impl_;
  std::string bytes;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (!has_token(id)) {
      return invalid_argument("decode: ids[" + std::to_string(i) + "] = " + std::to_string(id) +
                              " is not a token id (vocab_size " + std::to_string(vocab_size()) + ")");
    }
    if (skip_special_tokens && im.special[id]) continue;
    bytes += im.bytes[id];
  }
  if (!utf8::find_invalid(bytes)) return bytes;
  std::string out;
  utf8::append_lossy(bytes, out, /*hold_incomplete=*/false);
  return out;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  return has_token(id) ? impl_->bytes[id] : std::string();
}

bool Tokenizer::has_token(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < impl_->exists.size() && impl_->exists[id];
}

int64_t Tokenizer::vocab_size() const { return static_cast<int64_t>(impl_->bytes.size()); }

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (const auto it = impl_->added_ids.find(token); it != impl_->added_ids.end()) return it->second;
  return impl_->model.token_to_id(token);
}

std::optional<int32_t> Tokenizer::bos_token_id() const {
  if (impl_->bos.empty()) return std::nullopt;
  return token_to_id(impl_->bos);
}

std::optional<int32_t> Tokenizer::eos_token_id() const {
  if (impl_->eos.empty()) return std::nullopt;
  return token_to_id(impl_->eos);
}

std::string Tokenizer::bos_token() const { return impl_->bos; }
std::string Tokenizer::eos_token() const { return impl_->eos; }

bool Tokenizer::is_special(int32_t id) const { return has_token(id) && impl_->special[id]; }

}  // namespace longctx
