#include "model/sequence_kv.h"

#include <algorithm>
#include <cstring>

namespace longctx {

SequenceKV::SequenceKV(int64_t num_layers, int64_t num_kv_heads, int64_t head_dim, int64_t capacity_tokens,
                       int64_t block_size, bool kv_shared) {
  KVCacheShape shape{num_layers, 1, block_size, num_kv_heads, head_dim, kv_shared};
  cache_ = PagedKVCache(shape);
  reserve(std::max<int64_t>(capacity_tokens, 1));
}

void SequenceKV::reserve(int64_t tokens) {
  if (tokens <= capacity()) return;
  KVCacheShape shape = cache_.shape();
  const int64_t needed = (tokens + shape.block_size - 1) / shape.block_size;
  const int64_t blocks = std::max<int64_t>(needed, 2 * (shape.num_blocks - 1)) + 1;  // doubling: amortised O(1)
  const int64_t old_blocks = shape.num_blocks;
  shape.num_blocks = blocks;
  PagedKVCache grown(shape);
  const int64_t block_floats = shape.block_size * shape.token_width();
  for (int64_t l = 0; l < shape.num_layers; ++l) {
    std::memcpy(grown.k(l), cache_.k(l), static_cast<size_t>(old_blocks * block_floats) * sizeof(float));
    std::memcpy(grown.v(l), cache_.v(l), static_cast<size_t>(old_blocks * block_floats) * sizeof(float));
  }
  cache_ = std::move(grown);
  block_table_.resize(static_cast<size_t>(blocks - 1));
  for (int64_t b = 0; b < blocks - 1; ++b) block_table_[static_cast<size_t>(b)] = static_cast<int32_t>(b + 1);
}

}  // namespace longctx
