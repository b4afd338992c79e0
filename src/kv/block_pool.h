// BlockPool: fixed-size KV blocks by id, with reference counts, an intrusive LRU free
// list and the prefix cache's key → block map (nano-vllm's block manager, vLLM v1's
// block pool). Bookkeeping only: the bytes of block `id` live in exec/'s cache tensors.
//
// Invariants (check_invariants() verifies them; every operation is O(1) per block):
// - block 0 is a reserved null block: never handed out, never freed, never counted;
// - a block is in the free list exactly when its ref_count is 0, and
//   num_free_blocks() + num_used_blocks() == num_total_blocks();
// - a block carries a key exactly when the key maps to it.
//
// A freed block keeps its key: a later prefix can still hit it and revive it (touch).
// Allocation takes the least recently freed block, and only then forgets its key
// (eviction). A block with ref_count > 0 is never evicted.
//
// One pool per rank: ids are local to the pool. Threading: owned by one thread (the
// scheduler's), not synchronized.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "kv/block_hash.h"

namespace longctx {

class BlockPool {
 public:
  static constexpr int32_t kNullBlock = 0;

  // num_blocks counts the null block: num_blocks - 1 blocks can be handed out.
  BlockPool(int32_t num_blocks, bool enable_prefix_caching);

  // n blocks with ref_count 1, taken from the head of the free list (the n least recently
  // freed), or nullopt with nothing changed when fewer than n are free. They come back in
  // ascending id order, not free-list order: the same blocks are evicted either way, and
  // a chunk's blocks then lie back to back wherever the free set has runs (a request's
  // blocks are freed tail first, so they would otherwise come back descending) — the GPU
  // prefill kernel loads a tile of consecutive blocks as one copy (docs/cuda.md).
  std::optional<std::vector<int32_t>> allocate(int64_t n);
  // Drops one reference from each; blocks reaching 0 join the tail of the free list in
  // the given order, keeping their keys. Pass a request's blocks tail first, so that its
  // last blocks (the least shareable) are evicted before its first ones.
  void free(std::span<const int32_t> ids);
  // Adds one reference to each; a free block (a prefix hit) leaves the free list.
  void touch(std::span<const int32_t> ids);

  // The block cached under `key`, in use or free; nullopt without prefix caching.
  std::optional<int32_t> lookup(BlockHash key) const;
  // Records the key of a block that just became full. A no-op without prefix caching,
  // for a block that already has a key, or when another block already holds this key
  // (two requests computed the same block: the first stays the cached copy).
  void cache_block(int32_t id, BlockHash key);

  int64_t num_total_blocks() const { return static_cast<int64_t>(blocks_.size()) - 1; }  // without block 0
  int64_t num_free_blocks() const { return num_free_; }
  int64_t num_used_blocks() const { return num_total_blocks() - num_free_; }
  double usage() const {
    return num_total_blocks() > 0
               ? static_cast<double>(num_used_blocks()) / static_cast<double>(num_total_blocks())
               : 0.0;
  }
  int64_t num_cached_blocks() const { return static_cast<int64_t>(cached_.size()); }
  int64_t num_evicted_blocks() const { return num_evicted_; }  // cached blocks reused for new data
  int32_t ref_count(int32_t id) const { return blocks_[static_cast<size_t>(id)].ref_count; }
  std::optional<BlockHash> block_hash(int32_t id) const { return blocks_[static_cast<size_t>(id)].hash; }
  bool prefix_caching() const { return prefix_caching_; }
  // The free list from next-to-evict to last (O(free blocks)): for tests.
  std::vector<int32_t> free_list() const;

  // Full consistency check (O(blocks)): for tests and debugging.
  bool check_invariants() const;

 private:
  struct Block {
    int32_t ref_count = 0;
    int32_t prev = -1, next = -1;  // free list links; -1 = none
    bool in_free_list = false;
    std::optional<BlockHash> hash;
  };
  Block& at(int32_t id) { return blocks_[static_cast<size_t>(id)]; }
  const Block& at(int32_t id) const { return blocks_[static_cast<size_t>(id)]; }
  void push_free_back(int32_t id);
  void unlink_free(int32_t id);

  std::vector<Block> blocks_;
  int32_t free_head_ = -1, free_tail_ = -1;  // head: evicted next; tail: freed last
  int64_t num_free_ = 0;
  int64_t num_evicted_ = 0;
  bool prefix_caching_;
  std::unordered_map<BlockHash, int32_t> cached_;
};

}  // namespace longctx
