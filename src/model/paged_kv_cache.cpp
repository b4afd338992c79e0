#include "model/paged_kv_cache.h"

#include <cstring>

namespace longctx {

PagedKVCache::PagedKVCache(const KVCacheShape& shape) : shape_(shape) {
  const Shape dims{shape.num_blocks, shape.block_size, shape.num_kv_heads, shape.head_dim};
  // Uninitialised on purpose: a large budget costs no page until a block is written,
  // and attention only reads slots a sequence has written.
  for (int64_t l = 0; l < shape.num_layers; ++l) {
    k_.push_back(Tensor::empty(dims, DType::kF32));
    v_.push_back(shape.kv_shared ? k_.back() : Tensor::empty(dims, DType::kF32));
  }
}

void PagedKVCache::copy_block(int32_t src, int32_t dst) {
  const int64_t block_floats = shape_.block_size * shape_.token_width();
  for (int64_t l = 0; l < shape_.num_layers; ++l) {
    const size_t bytes = static_cast<size_t>(block_floats) * sizeof(float);
    std::memcpy(k(l) + dst * block_floats, k(l) + src * block_floats, bytes);
    if (!shape_.kv_shared) std::memcpy(v(l) + dst * block_floats, v(l) + src * block_floats, bytes);
  }
}

}  // namespace longctx
