#include "kv/kv_cache_manager.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

namespace longctx {
namespace {

std::vector<int32_t> tokens(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = static_cast<int32_t>(rng() % 1000);
  return t;
}

TEST(BlockPool, NullBlockIsNeverHandedOutAndFailedAllocationChangesNothing) {
  BlockPool pool(9, true);
  EXPECT_EQ(pool.num_total_blocks(), 8);
  auto a = pool.allocate(8);
  ASSERT_TRUE(a);
  EXPECT_EQ(std::count(a->begin(), a->end(), 0), 0);
  EXPECT_FALSE(pool.allocate(1));
  pool.free(std::vector<int32_t>{(*a)[0], (*a)[1]});
  EXPECT_FALSE(pool.allocate(3));
  EXPECT_EQ(pool.num_free_blocks(), 2);
  EXPECT_TRUE(pool.check_invariants());
}

TEST(BlockPool, EvictsTheLeastRecentlyFreedCachedBlockAndNeverOneInUse) {
  BlockPool pool(5, true);  // 4 usable
  auto a = pool.allocate(4).value();
  for (int i = 0; i < 4; ++i) pool.cache_block(a[static_cast<size_t>(i)], 100 + static_cast<BlockHash>(i));
  pool.free(std::vector<int32_t>{a[2], a[0]});  // a[2] freed first: evicted first
  auto b = pool.allocate(1).value();
  EXPECT_EQ(b[0], a[2]);
  EXPECT_FALSE(pool.lookup(102));
  EXPECT_EQ(pool.lookup(100).value(), a[0]);  // still cached while free
  EXPECT_EQ(pool.lookup(101).value(), a[1]);  // in use, cached
  pool.touch(std::vector<int32_t>{a[0]});     // a prefix hit revives the free block
  EXPECT_EQ(pool.ref_count(a[0]), 1);
  EXPECT_FALSE(pool.allocate(1));  // nothing free: in-use blocks are never evicted
  EXPECT_TRUE(pool.check_invariants());
}

TEST(KVCacheManager, SharedThousandTokenPrefixHits992TokensWithTheSameBlocks) {
  KVCacheManager kv({256, 16, true});
  auto prompt = tokens(1000, 1);
  EXPECT_EQ(kv.find_cached_prefix(1, prompt, ""), 0);
  ASSERT_TRUE(kv.allocate(1, prompt, 0, 1000, 0));
  kv.commit_computed(1, prompt, 1000);
  auto second = prompt;
  second.push_back(5);
  const int64_t cached = kv.find_cached_prefix(2, second, "");
  EXPECT_EQ(cached, 992);  // 62 full blocks
  ASSERT_TRUE(kv.allocate(2, second, cached, 1001 - cached, cached));
  for (size_t b = 0; b < 62; ++b) EXPECT_EQ(kv.block_table(2)[b], kv.block_table(1)[b]);
  EXPECT_NE(kv.block_table(2)[62], kv.block_table(1)[62]);  // the partial block is private
  EXPECT_EQ(kv.pool().ref_count(kv.block_table(1)[0]), 2);
  kv.free(1);
  kv.free(2);
  EXPECT_EQ(kv.num_free_blocks(), kv.num_total_blocks());
  EXPECT_TRUE(kv.pool().check_invariants());
}

TEST(KVCacheManager, SaltIsolatesTenantsAndAWholePromptHitBacksOffOneBlock) {
  KVCacheManager kv({64, 16, true});
  auto prompt = tokens(64, 2);
  kv.find_cached_prefix(1, prompt, "tenant-a");
  ASSERT_TRUE(kv.allocate(1, prompt, 0, 64));
  kv.commit_computed(1, prompt, 64);
  EXPECT_EQ(kv.find_cached_prefix(2, prompt, "tenant-b"), 0);
  EXPECT_EQ(kv.find_cached_prefix(3, prompt, "tenant-a"), 48);  // all 64 cached: recompute the last block
}

TEST(KVCacheManager, GeneratedTokensBecomeHittableAfterCommit) {
  KVCacheManager kv({64, 4, true});
  auto t = tokens(6, 3);
  kv.find_cached_prefix(1, t, "");
  ASSERT_TRUE(kv.allocate(1, t, 0, 6));
  kv.commit_computed(1, t, 6);
  for (int i = 0; i < 4; ++i) {  // decode: one token per step
    t.push_back(7 + i);
    ASSERT_TRUE(kv.allocate(1, t, 6 + i, 1));
    kv.commit_computed(1, t, 7 + i);
  }
  auto longer = t;
  longer.push_back(1);
  EXPECT_EQ(kv.find_cached_prefix(2, longer, ""), 8);
}

TEST(KVCacheManager, DisabledPrefixCachingNeverHits) {
  KVCacheManager kv({64, 16, false});
  auto prompt = tokens(100, 4);
  kv.find_cached_prefix(1, prompt, "");
  ASSERT_TRUE(kv.allocate(1, prompt, 0, 100));
  kv.commit_computed(1, prompt, 100);
  EXPECT_EQ(kv.find_cached_prefix(2, prompt, ""), 0);
}

// Random workloads over shared prefixes: allocations, decodes, frees, preemptions.
// After every step the pool is consistent; at the end every block is free again.
TEST(KVCacheManager, PropertyRandomWorkloadsNeverLeakOrEvictBlocksInUse) {
  std::mt19937 rng(11);
  KVCacheManager kv({200, 16, true});
  const std::vector<std::vector<int32_t>> prefixes = {tokens(300, 5), tokens(120, 6), tokens(40, 7)};
  struct Live {
    std::vector<int32_t> toks;
    int64_t computed = 0;
  };
  std::map<int64_t, Live> live;
  int64_t next = 1;
  for (int step = 0; step < 2000; ++step) {
    const uint32_t op = rng() % 10;
    if (op < 3) {  // new request: a shared prefix plus a random tail
      Live l;
      l.toks = prefixes[rng() % prefixes.size()];
      l.toks.resize(l.toks.size() - rng() % 30);
      for (uint32_t i = 0, n = rng() % 50; i < n; ++i) l.toks.push_back(static_cast<int32_t>(rng() % 1000));
      const int64_t cached = kv.find_cached_prefix(next, l.toks, "");
      ASSERT_LT(cached, static_cast<int64_t>(l.toks.size()));
      if (kv.allocate(next, l.toks, cached, static_cast<int64_t>(l.toks.size()) - cached, cached)) {
        l.computed = static_cast<int64_t>(l.toks.size());
        kv.commit_computed(next, l.toks, l.computed);
        live[next] = l;
      } else {
        kv.free(next);
      }
      ++next;
    } else if (op < 8 && !live.empty()) {  // decode one token on a random live request
      auto it = std::next(live.begin(), static_cast<long>(rng() % live.size()));
      it->second.toks.push_back(static_cast<int32_t>(rng() % 1000));
      if (kv.allocate(it->first, it->second.toks, it->second.computed, 1)) {
        it->second.computed += 1;
        kv.commit_computed(it->first, it->second.toks, it->second.computed);
        // Blocks of a live request always hold a reference.
        for (int32_t b : kv.block_table(it->first)) ASSERT_GE(kv.pool().ref_count(b), 1);
      } else {  // preempt it
        kv.free(it->first);
        live.erase(it);
      }
    } else if (!live.empty()) {  // finish or abort
      auto it = std::next(live.begin(), static_cast<long>(rng() % live.size()));
      kv.free(it->first);
      live.erase(it);
    }
    ASSERT_TRUE(kv.pool().check_invariants()) << "step " << step;
    ASSERT_EQ(kv.pool().num_used_blocks() + kv.num_free_blocks(), kv.num_total_blocks());
  }
  EXPECT_GT(kv.prefix_cache_hit_tokens(), 0);
  for (auto& [id, l] : live) kv.free(id);
  EXPECT_EQ(kv.num_free_blocks(), kv.num_total_blocks());
  EXPECT_TRUE(kv.pool().check_invariants());
}

}  // namespace
}  // namespace longctx
