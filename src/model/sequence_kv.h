// The KV cache of one sequence on its own: a PagedKVCache whose blocks 1..n belong to
// that sequence in order. Single-sequence generation (`longctx generate`, golden tests)
// runs through the same paged forward as the engine's batches.
#pragma once

#include <cstdint>
#include <vector>

#include "model/paged_kv_cache.h"

namespace longctx {

class SequenceKV {
 public:
  SequenceKV() = default;
  SequenceKV(int64_t num_layers, int64_t num_kv_heads, int64_t head_dim, int64_t capacity_tokens,
             int64_t block_size = 16, bool kv_shared = false);

  int64_t num_tokens() const { return num_tokens_; }
  int64_t capacity() const { return cache_.shape().num_blocks > 0 ? (cache_.shape().num_blocks - 1) * cache_.shape().block_size : 0; }
  // Grows (keeping contents) so that `tokens` fit.
  void reserve(int64_t tokens);
  PagedKVCache& cache() { return cache_; }
  const PagedKVCache& cache() const { return cache_; }
  const std::vector<int32_t>& block_table() const { return block_table_; }
  // Called by the model after a forward has written the new tokens' K/V.
  void advance(int64_t new_tokens) { num_tokens_ += new_tokens; }

 private:
  PagedKVCache cache_;
  std::vector<int32_t> block_table_;  // 1, 2, ..., n (block 0 is the null block)
  int64_t num_tokens_ = 0;
};

}  // namespace longctx
