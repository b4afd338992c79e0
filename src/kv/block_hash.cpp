#include "kv/block_hash.h"

#include <xxhash.h>

#include <algorithm>
#include <memory>
#include <new>

namespace longctx {

namespace {

struct StateDeleter {
  void operator()(XXH3_state_t* s) const { XXH3_freeState(s); }
};
using State = std::unique_ptr<XXH3_state_t, StateDeleter>;

State new_state() {
  State st(XXH3_createState());
  if (!st) throw std::bad_alloc();
  return st;
}

// The length of `extra` goes in before it, so (extra, tokens) pairs cannot alias.
BlockHash hash_with(XXH3_state_t* st, BlockHash parent, std::span<const int32_t> tokens,
                    std::string_view extra) {
  XXH3_64bits_reset(st);
  XXH3_64bits_update(st, &parent, sizeof(parent));
  const uint64_t extra_len = extra.size();
  XXH3_64bits_update(st, &extra_len, sizeof(extra_len));
  XXH3_64bits_update(st, extra.data(), extra.size());
  XXH3_64bits_update(st, tokens.data(), tokens.size_bytes());
  return XXH3_64bits_digest(st);
}

}  // namespace

BlockHash hash_block(BlockHash parent, std::span<const int32_t> tokens, std::string_view extra) {
  return hash_with(new_state().get(), parent, tokens, extra);
}

void extend_block_hashes(std::vector<BlockHash>& known, std::span<const int32_t> tokens, int64_t block_size,
                         int64_t num_blocks, std::string_view extra) {
  num_blocks = std::min<int64_t>(num_blocks, static_cast<int64_t>(tokens.size()) / block_size);
  if (static_cast<int64_t>(known.size()) >= num_blocks) return;
  State st = new_state();  // one state per call, reused for every block
  known.reserve(static_cast<size_t>(num_blocks));
  for (int64_t b = static_cast<int64_t>(known.size()); b < num_blocks; ++b) {
    const BlockHash parent = b == 0 ? kRootBlockParent : known.back();
    const auto block = tokens.subspan(static_cast<size_t>(b * block_size), static_cast<size_t>(block_size));
    known.push_back(hash_with(st.get(), parent, block, extra));
  }
}

std::vector<BlockHash> compute_block_hashes(std::span<const int32_t> tokens, int64_t block_size,
                                            std::string_view extra) {
  std::vector<BlockHash> keys;
  extend_block_hashes(keys, tokens, block_size, static_cast<int64_t>(tokens.size()) / block_size, extra);
  return keys;
}

}  // namespace longctx
