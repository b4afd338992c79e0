// KVCacheManager: applies the BlockPool to requests — per request an append-only block
// table, the keys of its full blocks, and prefix-cache lookups (vLLM v1's
// kv_cache_manager). Decides block ids only; the bytes live in exec/'s cache tensors.
// Threading: owned by the scheduler's thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "kv/block_hash.h"
#include "kv/block_pool.h"

namespace longctx {

struct KVCacheConfig {
  int32_t num_blocks = 0;  // including the null block 0
  int32_t block_size = 16;
  bool enable_prefix_caching = true;
};

class KVCacheManager {
 public:
  using Id = int64_t;
  explicit KVCacheManager(const KVCacheConfig& cfg);

  // Tokens of `tokens` whose KV is already cached: the longest run of full blocks whose
  // chained keys are in the pool, a multiple of block_size, never all of `tokens` (the
  // last token must run to produce logits). Takes no reference yet; `salt` isolates
  // tenants and is remembered for the request's later blocks.
  int64_t find_cached_prefix(Id id, std::span<const int32_t> tokens, std::string_view salt);
  // Makes room for num_computed + num_new tokens. On a request's first call,
  // num_cached_prefix tokens (from find_cached_prefix, in this same step) are taken
  // from the cache first. False, with nothing changed, when blocks are short.
  bool allocate(Id id, std::span<const int32_t> tokens, int64_t num_computed, int64_t num_new,
                int64_t num_cached_prefix = 0);
  // After a step: registers the request's blocks that became full with the prefix cache.
  void commit_computed(Id id, std::span<const int32_t> tokens, int64_t num_computed);
  // Releases the request's blocks (tail first, so its prefix outlives its tail in the
  // cache). Unknown ids are ignored.
  void free(Id id);

  const std::vector<int32_t>& block_table(Id id) const;
  int64_t block_size() const { return block_size_; }
  int64_t num_blocks_needed(int64_t tokens) const { return (tokens + block_size_ - 1) / block_size_; }
  bool can_ever_fit(int64_t tokens) const { return num_blocks_needed(tokens) <= pool_.num_total_blocks(); }
  int64_t num_free_blocks() const { return pool_.num_free_blocks(); }
  int64_t num_total_blocks() const { return pool_.num_total_blocks(); }
  double usage() const {
    return pool_.num_total_blocks() ? double(pool_.num_used_blocks()) / double(pool_.num_total_blocks()) : 0.0;
  }
  int64_t prefix_cache_queried_tokens() const { return queried_tokens_; }
  int64_t prefix_cache_hit_tokens() const { return hit_tokens_; }
  const BlockPool& pool() const { return pool_; }

 private:
  struct PerRequest {
    std::vector<int32_t> blocks;
    std::vector<BlockHash> hashes;  // keys of the full blocks known so far
    int64_t num_committed = 0;      // blocks registered with the cache
    std::string salt;
  };
  int64_t block_size_;
  BlockPool pool_;
  std::unordered_map<Id, PerRequest> requests_;
  int64_t queried_tokens_ = 0, hit_tokens_ = 0;
};

}  // namespace longctx
