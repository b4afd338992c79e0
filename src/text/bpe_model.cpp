#include "text/bpe_model.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <queue>

#include "text/tokenizer_utf8.h"

namespace longctx {
namespace {

constexpr char32_t kSmallCharLimit = 0x800;  // the byte-level alphabet lies below this
constexpr size_t kMaxCachedWordBytes = 256;
constexpr size_t kMaxCachedWords = 1 << 18;

Result<std::string> optional_string(const nlohmann::json& spec, const char* key, const std::string& where) {
  const auto it = spec.find(key);
  if (it == spec.end() || it->is_null()) return std::string();
  if (!it->is_string()) return invalid_argument(where + "." + key + ": expected a string or null");
  return it->get<std::string>();
}

Result<bool> optional_bool(const nlohmann::json& spec, const char* key, const std::string& where) {
  const auto it = spec.find(key);
  if (it == spec.end() || it->is_null()) return false;
  if (!it->is_boolean()) return invalid_argument(where + "." + key + ": expected true or false");
  return it->get<bool>();
}

}  // namespace

Result<BpeModel> BpeModel::from_json(const nlohmann::json& spec, const std::string& where) {
  if (!spec.is_object()) return invalid_argument(where + ": expected an object");
  if (const auto t = spec.find("type");
      t != spec.end() && (!t->is_string() || t->get<std::string>() != "BPE")) {
    return unimplemented(where + ".type: model type " + t->dump() + " is not supported (supported: BPE)");
  }
  BpeModel m;
  if (const auto d = spec.find("dropout"); d != spec.end() && !d->is_null()) {
    if (!d->is_number() || d->get<double>() != 0.0)
      return unimplemented(where + ".dropout: BPE dropout is not supported (expected null)");
  }
  LONGCTX_ASSIGN_OR_RETURN(m.continuing_subword_prefix_,
                           optional_string(spec, "continuing_subword_prefix", where));
  LONGCTX_ASSIGN_OR_RETURN(m.end_of_word_suffix_, optional_string(spec, "end_of_word_suffix", where));
  LONGCTX_ASSIGN_OR_RETURN(m.fuse_unk_, optional_bool(spec, "fuse_unk", where));
  LONGCTX_ASSIGN_OR_RETURN(m.byte_fallback_, optional_bool(spec, "byte_fallback", where));
  LONGCTX_ASSIGN_OR_RETURN(m.ignore_merges_, optional_bool(spec, "ignore_merges", where));

  const auto vocab = spec.find("vocab");
  if (vocab == spec.end() || !vocab->is_object())
    return invalid_argument(where + ".vocab: expected an object");
  m.vocab_.reserve(vocab->size() * 2);
  int64_t max_id = -1;
  for (const auto& [token, id] : vocab->items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
      return invalid_argument(where + ".vocab[\"" + token + "\"]: expected a non-negative 32-bit integer id");
    m.vocab_.emplace(token, static_cast<int32_t>(id.get<int64_t>()));
    max_id = std::max(max_id, id.get<int64_t>());
  }
  m.id_to_token_.resize(static_cast<size_t>(max_id + 1));
  m.has_token_.assign(static_cast<size_t>(max_id + 1), false);
  m.small_char_ids_.assign(kSmallCharLimit, -1);
  for (const auto& [token, id] : m.vocab_) {
    m.id_to_token_[id] = token;
    m.has_token_[id] = true;
    size_t pos = 0;
    if (!token.empty() && !utf8::find_invalid(token)) {
      const char32_t cp = utf8::next_code_point(token, pos);
      if (pos == token.size() && cp < kSmallCharLimit) m.small_char_ids_[cp] = id;
    }
  }

  LONGCTX_ASSIGN_OR_RETURN(const std::string unk, optional_string(spec, "unk_token", where));
  if (!unk.empty()) {
    const auto it = m.vocab_.find(unk);
    if (it == m.vocab_.end())
      return invalid_argument(where + ".unk_token: '" + unk + "' is not in the vocabulary");
    m.unk_id_ = it->second;
  }

  const auto merges = spec.find("merges");
  if (merges == spec.end() || !merges->is_array())
    return invalid_argument(where + ".merges: expected an array");
  m.merges_.reserve(merges->size() * 2);
  const size_t prefix_len = m.continuing_subword_prefix_.size();
  std::string a, b;
  for (size_t i = 0; i < merges->size(); ++i) {
    const nlohmann::json& entry = (*merges)[i];
    const std::string field = where + ".merges[" + std::to_string(i) + "]";
    // Two forms: "a b" (older files) or ["a", "b"].
    if (entry.is_string()) {
      const std::string& s = entry.get_ref<const std::string&>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
        return invalid_argument(field + ": expected two tokens separated by one space, got \"" + s + "\"");
      a.assign(s, 0, space);
      b.assign(s, space + 1);
    } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_string()) {
      a = entry[0].get<std::string>();
      b = entry[1].get<std::string>();
    } else {
      return invalid_argument(field + ": expected \"a b\" or [\"a\", \"b\"]");
    }
    const auto ia = m.vocab_.find(a);
    const auto ib = m.vocab_.find(b);
    if (ia == m.vocab_.end())
      return invalid_argument(field + ": token \"" + a + "\" is not in the vocabulary");
    if (ib == m.vocab_.end())
      return invalid_argument(field + ": token \"" + b + "\" is not in the vocabulary");
    std::string merged = a + (b.size() >= prefix_len ? b.substr(prefix_len) : std::string());
    const auto im = m.vocab_.find(merged);
    if (im == m.vocab_.end())
      return invalid_argument(field + ": merged token \"" + merged + "\" is not in the vocabulary");
    // A repeated pair keeps its last rank, as HF's map collection does.
    m.merges_.insert_or_assign(pair_key(ia->second, ib->second), Merge{static_cast<int32_t>(i), im->second});
  }
  return m;
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || !has_token_[id]) return nullptr;
  return &id_to_token_[id];
}

const BpeModel::Merge* BpeModel::find_merge(int32_t a, int32_t b) const {
  const auto it = merges_.find(pair_key(a, b));
  return it == merges_.end() ? nullptr : &it->second;
}

std::optional<int32_t> BpeModel::char_to_id(std::string_view ch, char32_t cp) const {
  if (cp < kSmallCharLimit) {
    const int32_t id = small_char_ids_[cp];
    if (id < 0) return std::nullopt;
    return id;
  }
  return token_to_id(ch);
}

const int32_t* BpeModel::WordCache::find(std::string_view word, size_t* n) const {
  const auto it = index_.find(word);
  if (it == index_.end()) return nullptr;
  *n = it->second.second;
  return ids_.data() + it->second.first;
}

void BpeModel::WordCache::insert(std::string_view word, const int32_t* ids, size_t n) {
  if (word.size() > kMaxCachedWordBytes) return;
  if (index_.size() >= kMaxCachedWords) {  // bound the memory of one huge, varied input
    index_.clear();
    ids_.clear();
  }
  index_.emplace(std::string(word), std::pair{static_cast<uint32_t>(ids_.size()), static_cast<uint32_t>(n)});
  ids_.insert(ids_.end(), ids, ids + n);
}

void BpeModel::tokenize(std::string_view word, WordCache* cache, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (const auto id = token_to_id(word)) {
      out.push_back(*id);
      return;
    }
  }
  if (cache != nullptr) {
    size_t n = 0;
    if (const int32_t* ids = cache->find(word, &n)) {
      out.insert(out.end(), ids, ids + n);
      return;
    }
  }
  const size_t first = out.size();
  merge_word(word, out);
  if (cache != nullptr) cache->insert(word, out.data() + first, out.size() - first);
}

void BpeModel::merge_word(std::string_view word, std::vector<int32_t>& out) const {
  // Symbols form a doubly linked list; a merged-away symbol gets id -1.
  struct Symbol {
    int32_t id, prev, next;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&](int32_t id) {
    const auto n = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, n - 1, -1});
    if (n > 0) symbols[n - 1].next = n;
  };

  // Initial symbols: one per character (HF BPE::merge_word), with the subword prefix on
  // all but the first and the suffix on the last; unknown characters fall back to bytes
  // or the unk token.
  const bool plain = continuing_subword_prefix_.empty() && end_of_word_suffix_.empty();
  std::optional<int32_t> pending_unk;
  std::string piece;
  for (size_t pos = 0; pos < word.size();) {
    const size_t begin = pos;
    const char32_t cp = utf8::next_code_point(word, pos);
    const std::string_view ch = word.substr(begin, pos - begin);
    std::optional<int32_t> id;
    if (plain) {
      id = char_to_id(ch, cp);
    } else {
      piece.clear();
      if (begin != 0) piece += continuing_subword_prefix_;
      piece += ch;
      if (pos == word.size()) piece += end_of_word_suffix_;
      id = token_to_id(piece);
    }
    if (id) {
      if (pending_unk) add(*std::exchange(pending_unk, std::nullopt));
      add(*id);
      continue;
    }
    if (byte_fallback_) {
      const std::string_view bytes = plain ? ch : std::string_view(piece);
      std::vector<int32_t> byte_ids;
      for (const char c : bytes) {
        char name[8];
        std::snprintf(name, sizeof(name), "<0x%02X>", static_cast<unsigned char>(c));
        const auto bid = token_to_id(name);
        if (!bid) break;
        byte_ids.push_back(*bid);
      }
      if (byte_ids.size() == bytes.size()) {
        for (const int32_t bid : byte_ids) add(bid);
        continue;
      }
    }
    if (unk_id_) {
      // Consecutive unknowns become one unk with fuse_unk, one each otherwise.
      if (pending_unk && !fuse_unk_) add(*pending_unk);
      pending_unk = unk_id_;
    }
  }
  if (pending_unk) add(*pending_unk);

  // Repeatedly merge the pair of lowest rank, leftmost first on ties. Heap entries go
  // stale as neighbours merge; an entry is applied only if its pair still produces the
  // same token (the check HF's Word::merge_all makes).
  struct Candidate {
    int32_t rank, pos, new_id;
    bool operator<(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate> heap;
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const Merge* m = find_merge(symbols[i].id, symbols[i + 1].id))
      heap.push({m->rank, static_cast<int32_t>(i), m->new_id});
  }
  while (!heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    Symbol& left = symbols[top.pos];
    if (left.id < 0 || left.next < 0) continue;
    const int32_t right_pos = left.next;
    const Merge* m = find_merge(left.id, symbols[right_pos].id);
    if (m == nullptr || m->new_id != top.new_id) continue;
    left.id = top.new_id;
    left.next = symbols[right_pos].next;
    symbols[right_pos].id = -1;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    if (left.prev >= 0) {
      if (const Merge* pm = find_merge(symbols[left.prev].id, left.id))
        heap.push({pm->rank, left.prev, pm->new_id});
    }
    if (left.next >= 0) {
      if (const Merge* nm = find_merge(left.id, symbols[left.next].id))
        heap.push({nm->rank, top.pos, nm->new_id});
    }
  }
  for (int32_t i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
}

}  // namespace longctx
