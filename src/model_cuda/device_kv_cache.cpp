#include "model_cuda/device_kv_cache.h"

#include <string>

namespace longctx::cuda {

Result<DeviceKVCache> DeviceKVCache::allocate(const KVCacheShape& shape) {
  if (shape.kv_shared) return invalid_argument("DeviceKVCache: a shared K/V latent (MLA) is not supported");
  if (shape.num_blocks < 1 || shape.block_size < 1 || shape.num_layers < 1)
    return invalid_argument("DeviceKVCache: num_blocks, block_size and num_layers must be >= 1 (got " +
                            std::to_string(shape.num_blocks) + ", " + std::to_string(shape.block_size) +
                            ", " + std::to_string(shape.num_layers) + ")");
  DeviceKVCache c;
  c.shape_ = shape;
  LONGCTX_ASSIGN_OR_RETURN(
      c.buf_, DeviceBuffer::allocate(bytes_per_block(shape) * static_cast<size_t>(shape.num_blocks),
                                     "the KV cache (" + std::to_string(shape.num_blocks) + " blocks)"));
  return c;
}

}  // namespace longctx::cuda
