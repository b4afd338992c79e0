#include "kv/block_pool.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace longctx {
namespace {

using Ids = std::vector<int32_t>;

TEST(BlockPool, NullBlockIsNeverHandedOut) {
  BlockPool pool(9, true);
  EXPECT_EQ(pool.num_total_blocks(), 8);
  EXPECT_EQ(pool.num_free_blocks(), 8);
  for (int round = 0; round < 3; ++round) {
    auto a = pool.allocate(8);
    ASSERT_TRUE(a);
    EXPECT_EQ(std::count(a->begin(), a->end(), BlockPool::kNullBlock), 0);
    Ids sorted = *a;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, (Ids{1, 2, 3, 4, 5, 6, 7, 8}));
    EXPECT_EQ(pool.usage(), 1.0);
    pool.free(*a);
  }
  pool.free(Ids{BlockPool::kNullBlock});  // ignored
  EXPECT_TRUE(pool.check_invariants());
  EXPECT_EQ(pool.num_free_blocks(), 8);
}

TEST(BlockPool, FailedAllocationChangesNothing) {
  BlockPool pool(9, true);
  auto a = pool.allocate(8).value();
  EXPECT_FALSE(pool.allocate(1));
  for (int i = 0; i < 4; ++i) pool.cache_block(a[static_cast<size_t>(i)], 500 + static_cast<BlockHash>(i));
  pool.free(Ids{a[3], a[2], a[1]});
  const Ids before = pool.free_list();
  EXPECT_FALSE(pool.allocate(4));
  EXPECT_EQ(pool.free_list(), before);
  EXPECT_EQ(pool.num_free_blocks(), 3);
  EXPECT_EQ(pool.num_cached_blocks(), 4);  // nothing evicted
  EXPECT_EQ(pool.lookup(503).value(), a[3]);
  EXPECT_TRUE(pool.check_invariants());
  EXPECT_TRUE(pool.allocate(0).value().empty());
}

TEST(BlockPool, RefCountsFollowTouchAndFree) {
  BlockPool pool(5, true);
  auto a = pool.allocate(2).value();
  EXPECT_EQ(pool.ref_count(a[0]), 1);
  pool.touch(Ids{a[0]});
  pool.touch(Ids{a[0]});
  EXPECT_EQ(pool.ref_count(a[0]), 3);
  pool.free(Ids{a[0]});
  pool.free(Ids{a[0]});
  EXPECT_EQ(pool.ref_count(a[0]), 1);
  EXPECT_EQ(pool.num_used_blocks(), 2);
  pool.free(a);
  EXPECT_EQ(pool.ref_count(a[0]), 0);
  EXPECT_EQ(pool.num_used_blocks(), 0);
  EXPECT_TRUE(pool.check_invariants());
}

// A request's blocks are freed tail first (descending); the next request taking them gets
// them ascending again, back to back as they were (the GPU prefill's whole-tile copies).
TEST(BlockPool, ReturnsBlocksInAscendingOrderSoFreedRunsStayContiguous) {
  BlockPool pool(17, false);  // 16 usable
  auto a = pool.allocate(16).value();
  for (size_t i = 1; i < a.size(); ++i) ASSERT_EQ(a[i], a[i - 1] + 1);
  std::vector<int32_t> tail_first(a.rbegin(), a.rend());
  pool.free(tail_first);
  auto b = pool.allocate(10).value();
  ASSERT_EQ(b.size(), 10u);
  for (size_t i = 1; i < b.size(); ++i) EXPECT_EQ(b[i], b[i - 1] + 1) << "at " << i;
  // The same ten blocks the free list's head held: the last ten freed first, a[15]..a[6].
  EXPECT_EQ(b.front(), a[6]);
  EXPECT_EQ(b.back(), a[15]);
  EXPECT_TRUE(pool.check_invariants());
}

TEST(BlockPool, EvictsTheLeastRecentlyFreedBlockFirst) {
  BlockPool pool(7, true);  // 6 usable
  auto a = pool.allocate(6).value();
  // Freed in this order; the free list is FIFO over frees.
  pool.free(Ids{a[4], a[1], a[5], a[0]});
  EXPECT_EQ(pool.free_list(), (Ids{a[4], a[1], a[5], a[0]}));
  // The two least recently freed, in ascending id order.
  EXPECT_EQ(pool.allocate(2).value(), (Ids{std::min(a[4], a[1]), std::max(a[4], a[1])}));
  pool.free(Ids{a[3]});
  EXPECT_EQ(pool.free_list(), (Ids{a[5], a[0], a[3]}));
  EXPECT_TRUE(pool.check_invariants());
}

TEST(BlockPool, FreeBlocksStayCachedUntilEvictedAndNeverEvictInUse) {
  BlockPool pool(5, true);  // 4 usable
  auto a = pool.allocate(4).value();
  for (int i = 0; i < 4; ++i) pool.cache_block(a[static_cast<size_t>(i)], 100 + static_cast<BlockHash>(i));
  pool.free(Ids{a[2], a[0]});                      // a[2] freed first: evicted first
  EXPECT_EQ(pool.block_hash(a[2]).value(), 102u);  // a free block keeps its key
  EXPECT_EQ(pool.lookup(102).value(), a[2]);
  auto b = pool.allocate(1).value();
  EXPECT_EQ(b[0], a[2]);
  EXPECT_FALSE(pool.lookup(102));  // evicted from the map when handed out again
  EXPECT_FALSE(pool.block_hash(a[2]));
  EXPECT_EQ(pool.num_evicted_blocks(), 1);
  EXPECT_EQ(pool.lookup(100).value(), a[0]);  // still cached while free
  EXPECT_EQ(pool.lookup(101).value(), a[1]);  // in use, cached
  pool.touch(Ids{a[0]});                      // a prefix hit revives the free block
  EXPECT_EQ(pool.ref_count(a[0]), 1);
  EXPECT_EQ(pool.num_free_blocks(), 0);
  EXPECT_FALSE(pool.allocate(1));  // nothing free: in-use cached blocks are never evicted
  EXPECT_EQ(pool.lookup(100).value(), a[0]);
  EXPECT_TRUE(pool.check_invariants());
}

TEST(BlockPool, ACacheKeyBelongsToOneBlock) {
  BlockPool pool(5, true);
  auto a = pool.allocate(2).value();
  pool.cache_block(a[0], 7);
  pool.cache_block(a[1], 7);  // same content computed twice: the first copy stays cached
  EXPECT_EQ(pool.lookup(7).value(), a[0]);
  EXPECT_FALSE(pool.block_hash(a[1]));
  pool.cache_block(a[0], 8);  // a block's key never changes while it holds data
  EXPECT_FALSE(pool.lookup(8));
  EXPECT_TRUE(pool.check_invariants());
}

TEST(BlockPool, DisabledPrefixCachingNeverCaches) {
  BlockPool pool(5, false);
  auto a = pool.allocate(1).value();
  pool.cache_block(a[0], 7);
  EXPECT_FALSE(pool.lookup(7));
  EXPECT_EQ(pool.num_cached_blocks(), 0);
  EXPECT_TRUE(pool.check_invariants());
}

}  // namespace
}  // namespace longctx
