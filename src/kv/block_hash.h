// Chained block keys for prefix caching (DESIGN.md §5): the key of a full block is
// hash(parent key, extra keys, the block's token ids), so two sequences share a block's
// key exactly when they share every token up to the block's end and the extra keys.
// Extra keys (a tenant's cache salt today; a LoRA id later) arrive as one string.
// Keys are plain 64-bit values: the same on every rank and instance, so a second tier or
// PD disaggregation can move blocks by key.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace longctx {

using BlockHash = uint64_t;

// XXH3-64 over (parent, length of extra, extra, tokens). The first block's parent is a
// fixed seed, kRootBlockParent.
inline constexpr BlockHash kRootBlockParent = 0x6c6f6e6763747831ull;  // "longctx1"
BlockHash hash_block(BlockHash parent, std::span<const int32_t> tokens, std::string_view extra);

// Keys of every full block of `tokens` (tokens.size() / block_size of them).
std::vector<BlockHash> compute_block_hashes(std::span<const int32_t> tokens, int64_t block_size,
                                            std::string_view extra);

// Grows `known` (the keys already computed for this sequence) to the keys of its first
// `num_blocks` full blocks, hashing only the new ones. num_blocks is clamped to the
// full blocks `tokens` holds.
void extend_block_hashes(std::vector<BlockHash>& known, std::span<const int32_t> tokens, int64_t block_size,
                         int64_t num_blocks, std::string_view extra);

}  // namespace longctx
