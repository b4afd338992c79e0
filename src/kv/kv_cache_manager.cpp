#include "kv/kv_cache_manager.h"

#include <algorithm>

namespace longctx {

Status KVCacheConfig::validate() const {
  if (block_size < 1 || (block_size & (block_size - 1)) != 0)
    return invalid_argument("KV cache block_size must be a power of two, got " + std::to_string(block_size));
  if (num_blocks < 2)
    return invalid_argument("KV cache num_blocks must be >= 2 (the null block and one usable block), got " +
                            std::to_string(num_blocks));
  return Status::ok();
}

namespace {
// Only what the bookkeeping cannot run with throws; the rest is validate()'s to report.
int64_t checked_block_size(const KVCacheConfig& cfg) {
  if (cfg.block_size < 1) throw StatusError(cfg.validate());
  return cfg.block_size;
}
}  // namespace

KVCacheManager::KVCacheManager(const KVCacheConfig& cfg)
    : block_size_(checked_block_size(cfg)), pool_(cfg.num_blocks, cfg.enable_prefix_caching) {}

KVCacheManager::PerRequest* KVCacheManager::find(Id id) {
  auto it = requests_.find(id);
  return it == requests_.end() ? nullptr : &it->second;
}

const KVCacheManager::PerRequest* KVCacheManager::find(Id id) const {
  auto it = requests_.find(id);
  return it == requests_.end() ? nullptr : &it->second;
}

int64_t KVCacheManager::find_cached_prefix(Id id, std::span<const int32_t> tokens, std::string_view salt) {
  PerRequest& r = requests_[id];
  if (!r.blocks.empty()) return 0;  // a running request's prefix is already in its table
  if (r.salt != salt) {             // keys depend on the salt; otherwise only new blocks are hashed
    r.hashes.clear();
    r.salt = std::string(salt);
  }
  if (!pool_.prefix_caching()) return 0;
  r.queried = true;
  const int64_t full = static_cast<int64_t>(tokens.size()) / block_size_;
  extend_block_hashes(r.hashes, tokens, block_size_, full, r.salt);
  // Keys are chained, so the first miss ends the prefix: no later block can hit.
  int64_t hits = 0;
  while (hits < full && pool_.lookup(r.hashes[static_cast<size_t>(hits)])) ++hits;
  int64_t cached = hits * block_size_;
  if (cached == static_cast<int64_t>(tokens.size()) && cached > 0) cached -= block_size_;
  return cached;
}

bool KVCacheManager::allocate(Id id, std::span<const int32_t> tokens, int64_t num_computed, int64_t num_new,
                              int64_t num_cached_prefix) {
  if (num_computed < 0 || num_new < 0 || num_cached_prefix < 0) return false;
  const int64_t total = num_computed + num_new;
  auto [it, inserted] = requests_.try_emplace(id);
  PerRequest& r = it->second;
  const bool first = r.blocks.empty();
  auto refuse = [&] {
    if (inserted) requests_.erase(it);
    return false;
  };

  // Every check happens before any change, so a refusal leaves the pool (LRU order
  // included) exactly as it was.
  std::vector<int32_t> hits;
  int64_t revived = 0;  // hits that sit in the free list: taking them costs free blocks too
  if (first && num_cached_prefix > 0) {
    if (num_cached_prefix % block_size_ != 0 || num_cached_prefix > total) return refuse();
    const int64_t n = num_cached_prefix / block_size_;
    if (n > static_cast<int64_t>(r.hashes.size())) return refuse();  // not found by find_cached_prefix
    hits.reserve(static_cast<size_t>(n));
    for (int64_t b = 0; b < n; ++b) {
      auto hit = pool_.lookup(r.hashes[static_cast<size_t>(b)]);
      if (!hit) return refuse();  // evicted since it was found: the caller looks up again
      hits.push_back(*hit);
      revived += pool_.ref_count(*hit) == 0 ? 1 : 0;
    }
  }
  const int64_t have = static_cast<int64_t>(r.blocks.size() + hits.size());
  const int64_t needed = std::max<int64_t>(0, num_blocks_needed(total) - have);
  if (needed + revived > pool_.num_free_blocks()) return refuse();

  pool_.touch(hits);  // first, so the fresh allocation cannot evict them
  auto fresh = pool_.allocate(needed);
  r.blocks.insert(r.blocks.end(), hits.begin(), hits.end());
  r.blocks.insert(r.blocks.end(), fresh->begin(), fresh->end());
  r.num_tokens = std::max(r.num_tokens, total);
  r.num_committed = std::max(r.num_committed, static_cast<int64_t>(hits.size()));  // hits carry keys
  if (first && r.queried) {
    queried_tokens_ += static_cast<int64_t>(tokens.size());
    hit_tokens_ += num_cached_prefix;
    r.queried = false;
  }
  return true;
}

void KVCacheManager::commit_computed(Id id, std::span<const int32_t> tokens, int64_t num_computed) {
  PerRequest* r = find(id);
  if (!r || !pool_.prefix_caching()) return;
  const int64_t full = std::min({num_computed / block_size_, static_cast<int64_t>(r->blocks.size()),
                                 static_cast<int64_t>(tokens.size()) / block_size_});
  if (full <= r->num_committed) return;
  extend_block_hashes(r->hashes, tokens, block_size_, full, r->salt);
  for (int64_t b = r->num_committed; b < full; ++b)
    pool_.cache_block(r->blocks[static_cast<size_t>(b)], r->hashes[static_cast<size_t>(b)]);
  r->num_committed = full;
}

void KVCacheManager::free(Id id) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return;
  const std::vector<int32_t>& blocks = it->second.blocks;
  const std::vector<int32_t> tail_first(blocks.rbegin(), blocks.rend());
  pool_.free(tail_first);
  requests_.erase(it);
}

Result<std::vector<BlockCopy>> KVCacheManager::fork(Id parent_id, Id child_id) {
  const PerRequest* parent = find(parent_id);
  if (!parent) return invalid_argument("fork: unknown parent request " + std::to_string(parent_id));
  if (contains(child_id))
    return invalid_argument("fork: child request " + std::to_string(child_id) + " already holds KV state");
  const int64_t full = parent->num_tokens / block_size_;
  const int64_t tail = parent->num_tokens % block_size_;

  PerRequest child;
  child.blocks.assign(parent->blocks.begin(), parent->blocks.begin() + full);
  child.num_tokens = parent->num_tokens;
  child.hashes.assign(
      parent->hashes.begin(),
      parent->hashes.begin() + std::min<int64_t>(full, static_cast<int64_t>(parent->hashes.size())));
  child.num_committed = std::min(parent->num_committed, full);
  child.salt = parent->salt;

  std::vector<BlockCopy> copies;
  if (tail > 0) {  // both will append to the partial block: the child needs its own
    auto fresh = pool_.allocate(1);
    if (!fresh)
      return Status(
          StatusCode::kResourceExhausted,
          "fork: no free KV block for the partial last block of request " + std::to_string(parent_id));
    copies.push_back({parent->blocks[static_cast<size_t>(full)], fresh->front(), tail});
    child.blocks.push_back(fresh->front());
  }
  pool_.touch(std::span<const int32_t>(child.blocks.data(), static_cast<size_t>(full)));
  requests_.emplace(child_id, std::move(child));
  return copies;
}

const std::vector<int32_t>& KVCacheManager::block_table(Id id) const {
  static const std::vector<int32_t> kEmpty;
  const PerRequest* r = find(id);
  return r ? r->blocks : kEmpty;
}

int64_t KVCacheManager::slot(Id id, int64_t position) const {
  const PerRequest* r = find(id);
  if (!r || position < 0 || position >= r->num_tokens) return -1;
  return static_cast<int64_t>(r->blocks[static_cast<size_t>(position / block_size_)]) * block_size_ +
         position % block_size_;
}

int64_t KVCacheManager::num_tokens(Id id) const {
  const PerRequest* r = find(id);
  return r ? r->num_tokens : 0;
}

bool KVCacheManager::check_invariants() const {
  if (!pool_.check_invariants()) return false;
  const int64_t total = pool_.num_total_blocks();
  std::vector<int64_t> refs(static_cast<size_t>(total + 1), 0);
  std::vector<int64_t> seen_in(static_cast<size_t>(total + 1), -1);  // the table a block was last seen in
  int64_t table = 0;
  for (const auto& [id, r] : requests_) {
    ++table;
    if (static_cast<int64_t>(r.blocks.size()) != num_blocks_needed(r.num_tokens)) return false;
    if (r.num_committed > static_cast<int64_t>(r.blocks.size())) return false;
    for (size_t b = 0; b < r.blocks.size(); ++b) {
      const int32_t block = r.blocks[b];
      if (block <= BlockPool::kNullBlock || block > total) return false;
      if (seen_in[static_cast<size_t>(block)] == table) return false;  // twice in one table
      seen_in[static_cast<size_t>(block)] = table;
      ++refs[static_cast<size_t>(block)];
      // A committed block with a key holds this request's key: in-use blocks are never evicted.
      const auto key = pool_.block_hash(block);
      if (static_cast<int64_t>(b) < r.num_committed && key && (b >= r.hashes.size() || *key != r.hashes[b]))
        return false;
    }
  }
  for (int32_t block = 1; block <= total; ++block)
    if (refs[static_cast<size_t>(block)] != pool_.ref_count(block)) return false;
  return true;
}

}  // namespace longctx
