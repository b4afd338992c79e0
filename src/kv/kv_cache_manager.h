// KVCacheManager: applies a BlockPool to requests (vLLM v1's kv_cache_manager): per
// request an append-only block table, the number of token slots it covers, and the keys
// of its full blocks for prefix caching. It decides block ids only; the bytes live in
// exec/'s cache tensors, and slot(id, pos) tells exec/ where token `pos` goes.
//
// A request's life: find_cached_prefix (at admission, no references taken) →
// allocate (first call takes the cached prefix, later calls grow the table) → the step
// runs → commit_computed (blocks that became full get keys, so later requests and the
// request's own generated tokens can be hit) → … → free.
//
// One manager per pool; under DCP/KVP each rank's share of a request's tokens is kept
// by that rank's own manager, so nothing here assumes a global token → block map.
// Threading: owned by the scheduler's thread, not synchronized.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "kv/block_hash.h"
#include "kv/block_pool.h"

namespace longctx {

struct KVCacheConfig {
  int32_t num_blocks = 0;   // including the null block 0
  int32_t block_size = 16;  // tokens per block, a power of two
  bool enable_prefix_caching = true;

  // Errors name the field; the engine maps its flags onto these before constructing.
  Status validate() const;
};

// A slot copy that fork() asks the caller to perform before the child's next step:
// slots [0, num_slots) of block src_block → the same offsets of block dst_block.
struct BlockCopy {
  int32_t src_block = 0;
  int32_t dst_block = 0;
  int64_t num_slots = 0;
};

class KVCacheManager {
 public:
  using Id = int64_t;  // the scheduler's RequestId
  // Callers validate() first (the engine and the simulator map their flags onto the
  // config). Throws StatusError only for block_size < 1, which no bookkeeping survives;
  // num_blocks < 2 leaves no usable block, so can_ever_fit() refuses every request.
  explicit KVCacheManager(const KVCacheConfig& cfg);

  // Tokens at the start of `tokens` whose KV is already cached: the longest run of full
  // blocks whose chained keys are in the pool, a multiple of block_size, and never all
  // of `tokens` (when every block hits, the last block is recomputed: the last token
  // must run to produce logits). Takes no reference: pass the result to allocate() in
  // the same step, before any other allocate() can evict those blocks. `salt` (extra
  // keys) isolates tenants and is remembered for the request's later blocks. For a
  // request holding no blocks (new or preempted); returns 0 otherwise.
  int64_t find_cached_prefix(Id id, std::span<const int32_t> tokens, std::string_view salt);

  // Makes room for num_computed + num_new tokens (`tokens`: every token id so far). On a
  // request's first call, the num_cached_prefix tokens found by find_cached_prefix are
  // taken from the cache (references added) before fresh blocks are allocated; later
  // calls only append blocks. Returns false and changes nothing (not even the LRU order)
  // when blocks are short, or when a prefix block was evicted since it was found.
  bool allocate(Id id, std::span<const int32_t> tokens, int64_t num_computed, int64_t num_new,
                int64_t num_cached_prefix = 0);

  // After a step: gives keys to the request's blocks that became full within its first
  // num_computed tokens, prompt and generated tokens alike.
  void commit_computed(Id id, std::span<const int32_t> tokens, int64_t num_computed);

  // Releases the request's blocks, tail first (its prefix outlives its tail in the
  // cache), and forgets it. Unknown ids are ignored.
  void free(Id id);

  // Parallel sampling (n > 1): `child` shares the parent's full blocks (references
  // added) and gets a fresh block for the parent's partial last block, if any; the
  // caller copies the returned slots before the child's next step. Contract: fork right
  // after the prompt's prefill, when the parent's slots all hold computed tokens and
  // `child` is unknown to the manager; the child then continues with the parent's token
  // ids and computed count. Errors: unknown parent or existing child (InvalidArgument),
  // no free block for the tail (ResourceExhausted; nothing changed).
  Result<std::vector<BlockCopy>> fork(Id parent, Id child);

  // Empty for an unknown id.
  const std::vector<int32_t>& block_table(Id id) const;
  // The cache slot of token `position`: block_table[position / bs] * bs + position % bs.
  // The position must be below num_tokens(id).
  int64_t slot(Id id, int64_t position) const;
  // Token slots the request's blocks were allocated for (0 for an unknown id).
  int64_t num_tokens(Id id) const;
  bool contains(Id id) const { return requests_.count(id) != 0; }

  int64_t block_size() const { return block_size_; }
  int64_t num_blocks_needed(int64_t tokens) const { return (tokens + block_size_ - 1) / block_size_; }
  // Admission check: could a request of `tokens` tokens ever run with the cache empty?
  bool can_ever_fit(int64_t tokens) const { return num_blocks_needed(tokens) <= pool_.num_total_blocks(); }
  int64_t num_free_blocks() const { return pool_.num_free_blocks(); }
  int64_t num_used_blocks() const { return pool_.num_used_blocks(); }
  int64_t num_total_blocks() const { return pool_.num_total_blocks(); }
  double usage() const { return pool_.usage(); }

  // Prefix-cache statistics, in tokens, counted once per admission (the first
  // successful allocate after find_cached_prefix): hits / queries is the hit rate.
  int64_t prefix_cache_queried_tokens() const { return queried_tokens_; }
  int64_t prefix_cache_hit_tokens() const { return hit_tokens_; }

  const BlockPool& pool() const { return pool_; }
  // The pool's invariants, and the references the pool counts are exactly those the
  // block tables hold; each table covers its token count (O(blocks + tables)): tests.
  bool check_invariants() const;

 private:
  struct PerRequest {
    std::vector<int32_t> blocks;    // append-only block table
    int64_t num_tokens = 0;         // slots the table was allocated for
    std::vector<BlockHash> hashes;  // keys of the full blocks known so far
    int64_t num_committed = 0;      // leading blocks whose keys were offered to the pool
    std::string salt;
    bool queried = false;  // find_cached_prefix ran; its stats await the first allocate
  };
  PerRequest* find(Id id);
  const PerRequest* find(Id id) const;

  int64_t block_size_;
  BlockPool pool_;
  std::unordered_map<Id, PerRequest> requests_;
  int64_t queried_tokens_ = 0, hit_tokens_ = 0;
};

}  // namespace longctx
