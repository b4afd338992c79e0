#include "kv/kv_cache_manager.h"

#include <algorithm>

namespace longctx {

KVCacheManager::KVCacheManager(const KVCacheConfig& cfg)
    : block_size_(cfg.block_size), pool_(cfg.num_blocks, cfg.enable_prefix_caching) {}

int64_t KVCacheManager::find_cached_prefix(Id id, std::span<const int32_t> tokens, std::string_view salt) {
  PerRequest& r = requests_[id];
  if (!pool_.prefix_caching()) {
    r.salt = std::string(salt);
    return 0;
  }
  const int64_t full = static_cast<int64_t>(tokens.size()) / block_size_;
  if (r.salt != salt) r.hashes.clear();  // keys depend on the salt; otherwise only new blocks are hashed
  r.salt = std::string(salt);
  extend_block_hashes(r.hashes, tokens, block_size_, full, r.salt);
  int64_t hits = 0;
  while (hits < full && pool_.lookup(r.hashes[static_cast<size_t>(hits)])) ++hits;
  int64_t cached = hits * block_size_;
  if (cached == static_cast<int64_t>(tokens.size()) && cached > 0) cached -= block_size_;  // recompute the last block
  queried_tokens_ += static_cast<int64_t>(tokens.size());
  hit_tokens_ += cached;
  return cached;
}

bool KVCacheManager::allocate(Id id, std::span<const int32_t>, int64_t num_computed, int64_t num_new,
                              int64_t num_cached_prefix) {
  PerRequest& r = requests_[id];
  std::vector<int32_t> hits;
  if (r.blocks.empty() && num_cached_prefix > 0) {
    for (int64_t b = 0; b < num_cached_prefix / block_size_; ++b) {
      auto hit = b < static_cast<int64_t>(r.hashes.size()) ? pool_.lookup(r.hashes[static_cast<size_t>(b)]) : std::nullopt;
      if (!hit) return false;  // not found by find_cached_prefix in this same step: a caller bug, refused
      hits.push_back(*hit);
    }
    pool_.touch(hits);  // before allocating, so fresh allocations cannot evict them
  }
  const int64_t have = static_cast<int64_t>(r.blocks.size() + hits.size());
  const int64_t needed = std::max<int64_t>(0, num_blocks_needed(num_computed + num_new) - have);
  auto fresh = pool_.allocate(needed);
  if (!fresh) {
    pool_.free(hits);
    return false;
  }
  r.blocks.insert(r.blocks.end(), hits.begin(), hits.end());
  r.num_committed = std::max<int64_t>(r.num_committed, static_cast<int64_t>(hits.size()));
  r.blocks.insert(r.blocks.end(), fresh->begin(), fresh->end());
  return true;
}

void KVCacheManager::commit_computed(Id id, std::span<const int32_t> tokens, int64_t num_computed) {
  auto it = requests_.find(id);
  if (it == requests_.end() || !pool_.prefix_caching()) return;
  PerRequest& r = it->second;
  const int64_t full = std::min<int64_t>(num_computed / block_size_, static_cast<int64_t>(r.blocks.size()));
  if (full <= r.num_committed) return;
  extend_block_hashes(r.hashes, tokens, block_size_, full, r.salt);
  for (int64_t b = r.num_committed; b < full; ++b)
    pool_.cache_block(r.blocks[static_cast<size_t>(b)], r.hashes[static_cast<size_t>(b)]);
  r.num_committed = full;
}

void KVCacheManager::free(Id id) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return;
  std::vector<int32_t> tail_first(it->second.blocks.rbegin(), it->second.blocks.rend());
  pool_.free(tail_first);
  requests_.erase(it);
}

const std::vector<int32_t>& KVCacheManager::block_table(Id id) const {
  static const std::vector<int32_t> kEmpty;
  auto it = requests_.find(id);
  return it == requests_.end() ? kEmpty : it->second.blocks;
}

}  // namespace longctx
