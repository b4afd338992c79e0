#include "model/sharded_sequence_kv.h"

namespace longctx {

ShardedSequenceKV::ShardedSequenceKV(const ParallelLayout& layout, int rank, int64_t num_local_layers,
                                     int64_t num_local_kv_heads, int64_t head_dim, int64_t capacity_tokens,
                                     bool kv_shared)
    : layout_(&layout),
      rank_(rank),
      block_size_(layout.config().block_size),
      kv_(num_local_layers, num_local_kv_heads, head_dim, capacity_tokens, layout.config().block_size,
          kv_shared) {}

int64_t ShardedSequenceKV::num_local_blocks() const {
  return (num_local_tokens() + block_size() - 1) / block_size();
}

std::vector<int64_t> ShardedSequenceKV::append(int64_t n) {
  std::vector<int64_t> slots(static_cast<size_t>(n), -1);
  int64_t stored = 0;
  for (int64_t i = 0; i < n; ++i) stored += layout_->stores_new_token(rank_, i, n, num_tokens_) ? 1 : 0;
  kv_.reserve(num_local_tokens() + stored);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t pos = num_tokens_ + i;
    if (!layout_->stores_new_token(rank_, i, n, num_tokens_)) continue;
    // SequenceKV's table is 1..n: local token j sits at block j / bs + 1, offset j % bs.
    const int64_t j = num_local_tokens();
    const int64_t bs = block_size();
    slots[static_cast<size_t>(i)] = int64_t{kv_.block_table()[static_cast<size_t>(j / bs)]} * bs + j % bs;
    positions_.push_back(static_cast<int32_t>(pos));
  }
  num_tokens_ += n;
  kv_.advance(stored);
  return slots;
}

}  // namespace longctx
