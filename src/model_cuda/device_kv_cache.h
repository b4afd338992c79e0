// The paged KV cache on the GPU: per layer, K and V as bf16 [num_blocks, block_size, Hkv, D]
// (the layout of cuda::rope_kv_write and cuda::paged_attention), all in one allocation.
// Which blocks a sequence owns is kv/'s business (block ids only), as on the CPU; block 0 is
// the null block that padded block-table entries point at.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "core/status.h"
#include "model/paged_kv_cache.h"
#include "model_cuda/device_buffer.h"

namespace longctx::cuda {

class DeviceKVCache {
 public:
  DeviceKVCache() = default;
  // num_layers, num_blocks, block_size, num_kv_heads, head_dim of `shape` (kv_shared unsupported).
  static Result<DeviceKVCache> allocate(const KVCacheShape& shape);
  // Bytes of one block over all layers, K and V, in bf16.
  static size_t bytes_per_block(const KVCacheShape& shape) {
    return 2 * static_cast<size_t>(shape.num_layers * shape.block_size * shape.token_width()) * 2;
  }

  const KVCacheShape& shape() const { return shape_; }
  size_t bytes() const { return buf_.bytes(); }
  __nv_bfloat16* k(int64_t layer) const { return base(layer, 0); }
  __nv_bfloat16* v(int64_t layer) const { return base(layer, 1); }

 private:
  __nv_bfloat16* base(int64_t layer, int kv) const {
    const size_t per = static_cast<size_t>(shape_.num_blocks * shape_.block_size * shape_.token_width());
    return buf_.as<__nv_bfloat16>() + (static_cast<size_t>(layer) * 2 + static_cast<size_t>(kv)) * per;
  }
  KVCacheShape shape_;
  DeviceBuffer buf_;
};

}  // namespace longctx::cuda
