#include "kv/block_hash.h"

#include <gtest/gtest.h>

#include <numeric>
#include <set>
#include <vector>

namespace longctx {
namespace {

std::vector<int32_t> iota_tokens(int n, int32_t first) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  std::iota(t.begin(), t.end(), first);
  return t;
}

TEST(BlockHash, KeysCoverFullBlocksOnlyAndAreDeterministic) {
  const auto t = iota_tokens(50, 0);
  const auto keys = compute_block_hashes(t, 16, "");
  ASSERT_EQ(keys.size(), 3u);  // 50 = 3 * 16 + 2: the partial block has no key
  EXPECT_EQ(keys, compute_block_hashes(t, 16, ""));
  EXPECT_EQ(keys[0], hash_block(kRootBlockParent, std::span(t).first(16), ""));
  EXPECT_EQ(keys[1], hash_block(keys[0], std::span(t).subspan(16, 16), ""));
  EXPECT_EQ(std::set<BlockHash>(keys.begin(), keys.end()).size(), 3u);
}

TEST(BlockHash, AKeyDependsOnEveryEarlierToken) {
  const auto a = iota_tokens(64, 0);
  auto b = a;
  b[20] = -1;  // in block 1
  const auto ka = compute_block_hashes(a, 16, ""), kb = compute_block_hashes(b, 16, "");
  EXPECT_EQ(ka[0], kb[0]);
  for (size_t i = 1; i < 4; ++i) EXPECT_NE(ka[i], kb[i]) << "block " << i;
  // Same tokens in a block, different parents: different keys.
  EXPECT_NE(hash_block(1, std::span(a).first(16), ""), hash_block(2, std::span(a).first(16), ""));
}

TEST(BlockHash, ExtraKeysSeparateTenantsAndCannotAliasTokens) {
  const auto t = iota_tokens(32, 7);
  const auto plain = compute_block_hashes(t, 16, "");
  const auto salted = compute_block_hashes(t, 16, "tenant-a");
  for (size_t i = 0; i < 2; ++i) EXPECT_NE(plain[i], salted[i]);
  EXPECT_NE(salted, compute_block_hashes(t, 16, "tenant-b"));
  // The salt's bytes followed by tokens must not collide with other salt/token splits.
  const std::vector<int32_t> four = {1, 2, 3, 4}, three = {2, 3, 4};
  const std::string one_as_bytes("\x01\x00\x00\x00", 4);
  EXPECT_NE(hash_block(0, four, ""), hash_block(0, three, one_as_bytes));
}

TEST(BlockHash, ExtendHashesOnlyNewBlocksAndMatchesTheBatchComputation) {
  const auto t = iota_tokens(100, 3);
  std::vector<BlockHash> known;
  extend_block_hashes(known, std::span(t).first(20), 16, 1, "s");
  EXPECT_EQ(known.size(), 1u);
  extend_block_hashes(known, t, 16, 4, "s");
  EXPECT_EQ(known.size(), 4u);
  extend_block_hashes(known, t, 16, 99, "s");  // clamped to the 6 full blocks
  EXPECT_EQ(known, compute_block_hashes(t, 16, "s"));
}

}  // namespace
}  // namespace longctx
