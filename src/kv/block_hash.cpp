#include "kv/block_hash.h"

#include <xxhash.h>

namespace longctx {

namespace {
constexpr BlockHash kRootParent = 0x6c6f6e6763747831ull;  // "longctx1": keys of the first block
}

BlockHash hash_block(BlockHash parent, std::span<const int32_t> tokens, std::string_view salt) {
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  XXH3_64bits_update(st, &parent, sizeof(parent));
  const uint64_t salt_len = salt.size();  // length first, so salt and tokens cannot alias
  XXH3_64bits_update(st, &salt_len, sizeof(salt_len));
  XXH3_64bits_update(st, salt.data(), salt.size());
  XXH3_64bits_update(st, tokens.data(), tokens.size_bytes());
  const BlockHash h = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  return h;
}

void extend_block_hashes(std::vector<BlockHash>& known, std::span<const int32_t> tokens, int64_t block_size,
                         int64_t num_blocks, std::string_view salt) {
  for (int64_t b = static_cast<int64_t>(known.size()); b < num_blocks; ++b) {
    const BlockHash parent = b == 0 ? kRootParent : known.back();
    known.push_back(hash_block(parent, tokens.subspan(static_cast<size_t>(b * block_size), static_cast<size_t>(block_size)), salt));
  }
}

}  // namespace longctx
