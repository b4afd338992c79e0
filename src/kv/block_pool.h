// BlockPool: fixed-size KV blocks by id, with reference counts, an intrusive LRU free
// list and the prefix cache's hash → block map (nano-vllm's block manager, vLLM v1's
// block pool). Block 0 is a reserved null block, never handed out. Every operation is
// O(1) per block; `free + used == total` holds after each call.
//
// A free block keeps its hash: it can still be hit by a later prefix and revived.
// Allocation takes the least recently freed block and only then forgets its hash.
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
  BlockPool(int32_t num_blocks, bool enable_prefix_caching);

  // n fresh blocks (ref 1), or nullopt with nothing changed when fewer are free.
  std::optional<std::vector<int32_t>> allocate(int64_t n);
  // Drops one reference from each; blocks reaching 0 join the free list in the given
  // order (so pass a request's blocks tail first: its last blocks go first).
  void free(std::span<const int32_t> ids);
  // Adds a reference; a free block (a cached prefix hit) leaves the free list.
  void touch(std::span<const int32_t> ids);
  std::optional<int32_t> lookup(BlockHash h) const;
  // Records the key of a block that just became full (no-op without prefix caching or
  // when another block already holds this key).
  void cache_block(int32_t id, BlockHash h);

  int64_t num_free_blocks() const { return num_free_; }
  int64_t num_total_blocks() const { return static_cast<int64_t>(blocks_.size()) - 1; }  // without the null block
  int64_t num_used_blocks() const { return num_total_blocks() - num_free_; }
  int32_t ref_count(int32_t id) const { return blocks_[static_cast<size_t>(id)].ref_count; }
  bool prefix_caching() const { return prefix_caching_; }
  // Full consistency check (O(blocks)): for tests and debugging.
  bool check_invariants() const;

 private:
  struct Block {
    int32_t ref_count = 0;
    int32_t prev = -1, next = -1;  // free list links; -1 = none
    bool in_free_list = false;
    std::optional<BlockHash> hash;
  };
  void push_free_back(int32_t id);
  void unlink_free(int32_t id);

  std::vector<Block> blocks_;
  int32_t free_head_ = -1, free_tail_ = -1;
  int64_t num_free_ = 0;
  bool prefix_caching_;
  std::unordered_map<BlockHash, int32_t> cached_;
};

}  // namespace longctx
