// Chained block keys for prefix caching: the key of a full block is
// hash(parent key, the block's token ids, extra keys such as a tenant's cache salt), so
// two sequences share a key exactly when they share every token up to the block's end.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace longctx {

using BlockHash = uint64_t;

// XXH3 over (parent, salt, tokens). The first block's parent is a fixed seed value.
BlockHash hash_block(BlockHash parent, std::span<const int32_t> tokens, std::string_view salt);

// Keys of the first `num_blocks` full blocks of `tokens`, continuing from `known`
// (the keys already computed for this sequence: only new blocks are hashed).
void extend_block_hashes(std::vector<BlockHash>& known, std::span<const int32_t> tokens, int64_t block_size,
                         int64_t num_blocks, std::string_view salt);

}  // namespace longctx
