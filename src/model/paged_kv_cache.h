// The KV cache's memory: per layer, K and V as fp32 [num_blocks, block_size, Hkv, D].
// Which blocks a sequence owns is decided by kv/ (block ids only); this class only
// holds the bytes. Block 0 is the null block kv/ never hands out.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace longctx {

struct KVCacheShape {
  int64_t num_layers = 0, num_blocks = 0, block_size = 16, num_kv_heads = 0, head_dim = 0;
  // MLA: one latent per token ([compressed kv | rope key]) serves as both K and V, so V
  // aliases K and the cache holds it once.
  bool kv_shared = false;
  int64_t token_width() const { return num_kv_heads * head_dim; }  // floats per token per layer for K (or V)
  // Bytes of one block over all layers, K and V: the unit a memory budget is divided by.
  int64_t bytes_per_block() const {
    return (kv_shared ? 1 : 2) * num_layers * block_size * token_width() * int64_t(sizeof(float));
  }
};

class PagedKVCache {
 public:
  PagedKVCache() = default;
  explicit PagedKVCache(const KVCacheShape& shape);

  const KVCacheShape& shape() const { return shape_; }
  float* k(int64_t layer) { return k_[static_cast<size_t>(layer)].data<float>(); }
  float* v(int64_t layer) { return v_[static_cast<size_t>(layer)].data<float>(); }
  const float* k(int64_t layer) const { return k_[static_cast<size_t>(layer)].data<float>(); }
  const float* v(int64_t layer) const { return v_[static_cast<size_t>(layer)].data<float>(); }
  // Copies whole blocks (all layers), e.g. the partial tail block of a forked sequence.
  void copy_block(int32_t src, int32_t dst);

 private:
  KVCacheShape shape_;
  std::vector<Tensor> k_, v_;
};

}  // namespace longctx
