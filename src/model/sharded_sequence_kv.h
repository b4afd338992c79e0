// One rank's share of one sequence's KV cache under a ParallelLayout: the K/V of the
// tokens that the layout places on this rank (DCP interleave inside the TP group, KVP
// shards across groups), for this rank's kv heads and pipeline layers only. Tokens are
// stored in arrival order in a SequenceKV (a PagedKVCache whose blocks 1..n are this
// sequence's) together with each stored token's absolute position, which the causal
// mask of sharded attention needs because a rank's keys are not positions 0..n−1.
#pragma once

#include <cstdint>
#include <vector>

#include "model/sequence_kv.h"
#include "parallel/parallel_layout.h"

namespace longctx {

class ShardedSequenceKV {
 public:
  ShardedSequenceKV() = default;
  ShardedSequenceKV(const ParallelLayout& layout, int rank, int64_t num_local_layers,
                    int64_t num_local_kv_heads, int64_t head_dim, int64_t capacity_tokens,
                    bool kv_shared = false);  // kv_shared: MLA's latent, K and V one memory

  int64_t num_tokens() const { return num_tokens_; }  // the whole sequence's length (same on every rank)
  int64_t num_local_tokens() const { return static_cast<int64_t>(positions_.size()); }
  // KV blocks this rank holds for the sequence (what a block pool would hand out).
  int64_t num_local_blocks() const;
  int64_t block_size() const { return block_size_; }
  const std::vector<int32_t>& local_positions() const { return positions_; }
  PagedKVCache& cache() { return kv_.cache(); }
  // Local token i lives in cache slot local_slot(i) (blocks 1..n in order).
  int64_t local_slot(int64_t i) const { return block_size() + i; }

  // Appends the next `n` tokens of the sequence: reserves room for those this rank
  // stores and returns each new token's cache slot (−1 for tokens stored elsewhere).
  std::vector<int64_t> append(int64_t n);

 private:
  const ParallelLayout* layout_ = nullptr;
  int rank_ = 0;
  int64_t block_size_ = 16;
  SequenceKV kv_;
  std::vector<int32_t> positions_;
  int64_t num_tokens_ = 0;
};

}  // namespace longctx
