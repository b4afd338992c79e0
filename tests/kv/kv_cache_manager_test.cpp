#include "kv/kv_cache_manager.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

namespace longctx {
namespace {

using Ids = std::vector<int32_t>;

std::vector<int32_t> tokens(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = static_cast<int32_t>(rng() % 1000);
  return t;
}

// Admits a whole prompt in one step, as the scheduler does: look up, allocate, commit.
int64_t admit(KVCacheManager& kv, int64_t id, const std::vector<int32_t>& t, std::string_view salt = "") {
  const int64_t cached = kv.find_cached_prefix(id, t, salt);
  const int64_t n = static_cast<int64_t>(t.size());
  if (!kv.allocate(id, t, cached, n - cached, cached)) return -1;
  kv.commit_computed(id, t, n);
  return cached;
}

TEST(KVCacheConfig, RejectsBadSizesNamingTheField) {
  EXPECT_TRUE((KVCacheConfig{64, 16, true}).validate().is_ok());
  const Status bad = KVCacheConfig{64, 24, true}.validate();
  EXPECT_FALSE(bad.is_ok());
  EXPECT_NE(bad.message().find("block_size"), std::string::npos);
  EXPECT_FALSE((KVCacheConfig{1, 16, true}).validate().is_ok());
  EXPECT_THROW(KVCacheManager(KVCacheConfig{64, 0, true}), StatusError);
  KVCacheManager empty(KVCacheConfig{0, 16, false});  // no usable block: nothing ever fits
  EXPECT_EQ(empty.num_total_blocks(), 0);
  EXPECT_FALSE(empty.can_ever_fit(1));
  EXPECT_FALSE(empty.allocate(1, {}, 0, 1));
  EXPECT_TRUE(empty.check_invariants());
}

TEST(KVCacheManager, SharedThousandTokenPrefixHits992TokensWithTheSameBlocks) {
  KVCacheManager kv({256, 16, true});
  auto prompt = tokens(1000, 1);
  EXPECT_EQ(admit(kv, 1, prompt), 0);
  EXPECT_EQ(kv.block_table(1).size(), 63u);  // 1000 = 62 * 16 + 8
  auto second = prompt;
  second.push_back(5);
  const int64_t cached = kv.find_cached_prefix(2, second, "");
  EXPECT_EQ(cached, 992);  // 62 full blocks
  ASSERT_TRUE(kv.allocate(2, second, cached, 1001 - cached, cached));
  for (size_t b = 0; b < 62; ++b) EXPECT_EQ(kv.block_table(2)[b], kv.block_table(1)[b]);
  EXPECT_NE(kv.block_table(2)[62], kv.block_table(1)[62]);  // the partial block is private
  EXPECT_EQ(kv.pool().ref_count(kv.block_table(1)[0]), 2);
  EXPECT_EQ(kv.num_used_blocks(), 63 + 1);
  EXPECT_EQ(kv.prefix_cache_queried_tokens(), 1000 + 1001);
  EXPECT_EQ(kv.prefix_cache_hit_tokens(), 992);
  EXPECT_TRUE(kv.check_invariants());
  kv.free(1);
  EXPECT_EQ(kv.pool().ref_count(kv.block_table(2)[0]), 1);
  kv.free(2);
  kv.free(2);   // twice: a no-op
  kv.free(77);  // unknown: a no-op
  EXPECT_EQ(kv.num_free_blocks(), kv.num_total_blocks());
  EXPECT_TRUE(kv.check_invariants());
}

TEST(KVCacheManager, SaltIsolatesTenantsAndAWholePromptHitBacksOffOneBlock) {
  KVCacheManager kv({64, 16, true});
  auto prompt = tokens(64, 2);
  EXPECT_EQ(admit(kv, 1, prompt, "tenant-a"), 0);
  EXPECT_EQ(kv.find_cached_prefix(2, prompt, "tenant-b"), 0);
  EXPECT_EQ(kv.find_cached_prefix(3, prompt, ""), 0);
  // All 64 tokens are cached: the last block is recomputed so the last token has logits.
  const int64_t cached = kv.find_cached_prefix(4, prompt, "tenant-a");
  EXPECT_EQ(cached, 48);
  ASSERT_TRUE(kv.allocate(4, prompt, cached, 64 - cached, cached));
  EXPECT_EQ(Ids(kv.block_table(4).begin(), kv.block_table(4).begin() + 3),
            Ids(kv.block_table(1).begin(), kv.block_table(1).begin() + 3));
  EXPECT_NE(kv.block_table(4)[3], kv.block_table(1)[3]);  // written afresh, never a shared block
  EXPECT_TRUE(kv.check_invariants());
}

TEST(KVCacheManager, GeneratedTokensBecomeHittableAfterCommit) {
  KVCacheManager kv({64, 4, true});
  auto t = tokens(6, 3);
  admit(kv, 1, t);
  for (int i = 0; i < 4; ++i) {  // decode: one token per step
    t.push_back(7 + i);
    ASSERT_TRUE(kv.allocate(1, t, 6 + i, 1));
    kv.commit_computed(1, t, 7 + i);
  }
  EXPECT_EQ(kv.num_tokens(1), 10);
  auto longer = t;
  longer.push_back(1);
  EXPECT_EQ(kv.find_cached_prefix(2, longer, ""), 8);  // blocks 0 and 1; block 1 ends in generated tokens
  t.push_back(99);                                     // a token appended but not computed yet gives no key
  EXPECT_EQ(kv.find_cached_prefix(3, t, ""), 8);
}

TEST(KVCacheManager, DisabledPrefixCachingNeverHits) {
  KVCacheManager kv({64, 16, false});
  auto prompt = tokens(100, 4);
  EXPECT_EQ(admit(kv, 1, prompt), 0);
  EXPECT_EQ(admit(kv, 2, prompt), 0);
  EXPECT_EQ(kv.num_used_blocks(), 14);
  EXPECT_EQ(kv.prefix_cache_queried_tokens(), 0);
  EXPECT_TRUE(kv.check_invariants());
}

TEST(KVCacheManager, SlotsFollowTheBlockTable) {
  KVCacheManager kv({64, 16, true});
  ASSERT_TRUE(kv.allocate(1, {}, 0, 40));
  const Ids& table = kv.block_table(1);
  ASSERT_EQ(table.size(), 3u);
  EXPECT_EQ(kv.slot(1, 0), table[0] * 16);
  EXPECT_EQ(kv.slot(1, 17), table[1] * 16 + 1);
  EXPECT_EQ(kv.slot(1, 39), table[2] * 16 + 7);
  EXPECT_EQ(kv.slot(1, 40), -1);  // no slot allocated there yet
  EXPECT_EQ(kv.slot(2, 0), -1);
  ASSERT_TRUE(kv.allocate(1, {}, 40, 9));  // grows in place: the table is append-only
  EXPECT_EQ(kv.block_table(1).size(), 4u);
  EXPECT_EQ(kv.slot(1, 48), kv.block_table(1)[3] * 16);
  EXPECT_TRUE(kv.block_table(2).empty());
  EXPECT_FALSE(kv.can_ever_fit(64 * 16));  // 63 usable blocks
  EXPECT_TRUE(kv.can_ever_fit(63 * 16));
}

TEST(KVCacheManager, FreeingReleasesTheTailFirstSoThePrefixOutlivesIt) {
  KVCacheManager kv({5, 4, true});  // 4 usable blocks of 4 tokens
  const auto prompt = tokens(16, 5);
  admit(kv, 1, prompt);
  const Ids table = kv.block_table(1);
  kv.free(1);
  EXPECT_EQ(kv.pool().free_list(), (Ids{table[3], table[2], table[1], table[0]}));
  ASSERT_TRUE(kv.allocate(2, {}, 0, 4));  // evicts exactly one cached block: the tail
  EXPECT_EQ(kv.block_table(2)[0], table[3]);
  auto again = prompt;
  again.push_back(1);
  EXPECT_EQ(kv.find_cached_prefix(3, again, ""), 12);
}

TEST(KVCacheManager, RefusedAllocationChangesNothingEvenWithPrefixHits) {
  KVCacheManager kv({6, 4, true});  // 5 usable
  const auto prompt = tokens(16, 6);
  admit(kv, 1, prompt);
  kv.free(1);                              // free list: the unused block, then 1's 4 tail first
  ASSERT_TRUE(kv.allocate(2, {}, 0, 12));  // takes the unused block and evicts 1's last two
  ASSERT_EQ(kv.num_free_blocks(), 2);
  auto longer = prompt;
  longer.resize(40, 3);
  const int64_t cached = kv.find_cached_prefix(3, longer, "");
  ASSERT_EQ(cached, 8);  // two cached blocks, both free
  const Ids free_before = kv.pool().free_list();
  // 10 blocks: 2 hits + 8 fresh with 2 free: refused, and nothing moved.
  EXPECT_FALSE(kv.allocate(3, longer, cached, 40 - cached, cached));
  EXPECT_EQ(kv.pool().free_list(), free_before);
  EXPECT_TRUE(kv.block_table(3).empty());
  // 3 blocks: 2 hits + 1 fresh. Reviving a free hit costs a free block too: refused.
  longer.resize(12);
  ASSERT_EQ(kv.find_cached_prefix(3, longer, ""), 8);
  EXPECT_FALSE(kv.allocate(3, longer, 8, 4, 8));
  EXPECT_EQ(kv.pool().free_list(), free_before);
  EXPECT_FALSE(kv.allocate(9, {}, 0, 21));  // a request never seen: not even an entry is created
  EXPECT_FALSE(kv.contains(9));
  // 2 blocks (the whole 8-token prompt hits, so it backs off to 1 hit + 1 fresh): fits exactly.
  longer.resize(8);
  ASSERT_EQ(kv.find_cached_prefix(4, longer, ""), 4);
  EXPECT_TRUE(kv.allocate(4, longer, 4, 4, 4));
  EXPECT_EQ(kv.num_free_blocks(), 0);
  EXPECT_TRUE(kv.check_invariants());
}

TEST(KVCacheManager, AStaleHitIsRefusedAndTheNextLookupSeesTheEviction) {
  KVCacheManager kv({5, 4, true});  // 4 usable
  const auto prompt = tokens(9, 7);
  admit(kv, 1, prompt);
  kv.free(1);  // 3 cached free blocks
  EXPECT_EQ(kv.find_cached_prefix(2, prompt, ""), 8);
  ASSERT_TRUE(kv.allocate(3, {}, 0, 16));  // another request takes every block meanwhile
  EXPECT_FALSE(kv.allocate(2, prompt, 8, 1, 8));
  EXPECT_EQ(kv.num_free_blocks(), 0);
  kv.free(3);
  EXPECT_EQ(kv.find_cached_prefix(2, prompt, ""), 0);
  EXPECT_TRUE(kv.check_invariants());
}

TEST(KVCacheManager, PressureEvictsCachedFreeBlocksButNeverOnesInUse) {
  KVCacheManager kv({17, 4, true});  // 16 usable
  const auto shared = tokens(16, 8);
  const auto other = tokens(16, 9);
  admit(kv, 1, shared);  // 4 blocks in use
  admit(kv, 2, other);
  kv.free(2);                              // 4 cached free blocks
  EXPECT_TRUE(kv.allocate(3, {}, 0, 48));  // 12 blocks: the 8 never-used ones, then B's 4
  EXPECT_EQ(kv.pool().num_evicted_blocks(), 4);
  EXPECT_EQ(kv.find_cached_prefix(4, other, ""), 0);
  auto again = shared;
  again.push_back(0);
  EXPECT_EQ(kv.find_cached_prefix(5, again, ""), 16);  // in use: untouched by the pressure
  EXPECT_FALSE(kv.allocate(6, {}, 0, 1));              // and never taken for a new request
  for (int32_t b : kv.block_table(1)) EXPECT_EQ(kv.pool().ref_count(b), 1);
  EXPECT_TRUE(kv.check_invariants());
}

TEST(KVCacheManager, ForkSharesFullBlocksAndCopiesThePartialOne) {
  KVCacheManager kv({16, 16, true});
  const auto prompt = tokens(40, 10);  // 2 full blocks + 8 tokens
  admit(kv, 1, prompt);
  auto copies = kv.fork(1, 2);
  ASSERT_TRUE(copies.is_ok()) << copies.status().to_string();
  const Ids& parent = kv.block_table(1);
  const Ids& child = kv.block_table(2);
  ASSERT_EQ(child.size(), 3u);
  EXPECT_EQ(child[0], parent[0]);
  EXPECT_EQ(child[1], parent[1]);
  EXPECT_NE(child[2], parent[2]);
  ASSERT_EQ(copies->size(), 1u);
  EXPECT_EQ((*copies)[0].src_block, parent[2]);
  EXPECT_EQ((*copies)[0].dst_block, child[2]);
  EXPECT_EQ((*copies)[0].num_slots, 8);
  EXPECT_EQ(kv.pool().ref_count(parent[0]), 2);
  EXPECT_EQ(kv.pool().ref_count(parent[2]), 1);
  EXPECT_EQ(kv.num_tokens(2), 40);
  EXPECT_TRUE(kv.check_invariants());

  // The two continue apart; the child's own full blocks become cached too.
  auto child_tokens = prompt;
  child_tokens.resize(48, 42);
  ASSERT_TRUE(kv.allocate(2, child_tokens, 40, 8));
  kv.commit_computed(2, child_tokens, 48);
  child_tokens.push_back(1);
  EXPECT_EQ(kv.find_cached_prefix(3, child_tokens, ""), 48);

  EXPECT_EQ(kv.fork(1, 2).status().code(), StatusCode::kInvalidArgument);  // child exists
  EXPECT_EQ(kv.fork(8, 9).status().code(), StatusCode::kInvalidArgument);  // no parent
  kv.free(1);
  EXPECT_EQ(kv.pool().ref_count(child[0]), 1);
  kv.free(2);
  kv.free(3);
  EXPECT_EQ(kv.num_free_blocks(), kv.num_total_blocks());
  EXPECT_TRUE(kv.check_invariants());
}

TEST(KVCacheManager, ForkOfABlockAlignedPromptCopiesNothingAndRefusesWithoutAFreeBlock) {
  KVCacheManager kv({4, 16, true});  // 3 usable
  const auto aligned = tokens(32, 11);
  admit(kv, 1, aligned);
  auto copies = kv.fork(1, 2);
  ASSERT_TRUE(copies.is_ok());
  EXPECT_TRUE(copies->empty());
  EXPECT_EQ(kv.block_table(2), kv.block_table(1));
  kv.free(1);
  kv.free(2);
  admit(kv, 3, tokens(40, 12));  // takes all 3 blocks; the tail needs a fourth
  const Ids free_before = kv.pool().free_list();
  EXPECT_EQ(kv.fork(3, 4).status().code(), StatusCode::kResourceExhausted);
  EXPECT_FALSE(kv.contains(4));
  EXPECT_EQ(kv.pool().ref_count(kv.block_table(3)[0]), 1);
  EXPECT_EQ(kv.pool().free_list(), free_before);
  EXPECT_TRUE(kv.check_invariants());
}

// Random workloads over shared prefixes, as a scheduler would drive them: chunked
// prefills, decodes, forks, finishes and aborts, preemptions (free, later re-admitted
// with its generated tokens). A shadow copy of the cache's contents is written through
// slot() exactly as exec/ would, so every cached token a request reads is checked to be
// its own. After every step the manager's invariants hold; at the end nothing leaks.
TEST(KVCacheManager, PropertyRandomWorkloadsKeepInvariantsAndNeverLeak) {
  constexpr int32_t kBlocks = 160, kBs = 16;
  std::mt19937 rng(11);
  KVCacheManager kv({kBlocks, kBs, true});
  std::vector<int32_t> cache(static_cast<size_t>(kBlocks * kBs), -1);  // token id held by each slot
  const std::vector<std::vector<int32_t>> prefixes = {tokens(300, 5), tokens(120, 6), tokens(40, 7)};
  struct Seq {
    std::vector<int32_t> toks;
    int64_t computed = 0;
  };
  std::map<int64_t, Seq> live, preempted;
  int64_t next_id = 1, preemptions = 0, forks = 0;

  auto run = [&](int64_t id, Seq& s, int64_t num_new) {  // the step: writes KV for [computed, +num_new)
    for (int64_t p = s.computed; p < s.computed + num_new; ++p)
      cache[static_cast<size_t>(kv.slot(id, p))] = s.toks[static_cast<size_t>(p)];
    s.computed += num_new;
    kv.commit_computed(id, s.toks, s.computed);
  };
  auto admit_seq = [&](int64_t id, Seq s) {
    const int64_t cached = kv.find_cached_prefix(id, s.toks, "");
    const int64_t n = static_cast<int64_t>(s.toks.size());
    EXPECT_LT(cached, n);
    EXPECT_EQ(cached % kBs, 0);
    const int64_t chunk = std::min<int64_t>(n - cached, 1 + rng() % 200);
    if (!kv.allocate(id, s.toks, cached, chunk, cached)) return false;
    s.computed = cached;
    run(id, s, chunk);
    live[id] = std::move(s);
    return true;
  };

  for (int step = 0; step < 2000; ++step) {
    const uint32_t op = rng() % 20;
    if (op < 4) {  // a new request: a shared prefix, cut somewhere, plus a random tail
      Seq s;
      s.toks = prefixes[rng() % prefixes.size()];
      s.toks.resize(s.toks.size() - rng() % 30);
      for (uint32_t i = 0, n = rng() % 50; i < n; ++i) s.toks.push_back(static_cast<int32_t>(rng() % 1000));
      const int64_t id = next_id++;
      if (!admit_seq(id, std::move(s))) kv.free(id);  // stays waiting: forget the lookup
    } else if (op < 5 && !preempted.empty()) {        // re-admit a preempted request
      auto it = preempted.begin();
      if (admit_seq(it->first, it->second))
        preempted.erase(it);
      else
        kv.free(it->first);
    } else if (op < 15 && !live.empty()) {  // one step of a running request
      auto it = std::next(live.begin(), static_cast<long>(rng() % live.size()));
      Seq& s = it->second;
      const int64_t n = static_cast<int64_t>(s.toks.size());
      int64_t num_new = 1;
      if (s.computed < n)
        num_new = std::min<int64_t>(n - s.computed, 1 + rng() % 64);  // prefill chunk
      else
        s.toks.push_back(static_cast<int32_t>(rng() % 1000));  // decode
      if (kv.allocate(it->first, s.toks, s.computed, num_new)) {
        run(it->first, s, num_new);
      } else {  // out of blocks: preempt it
        kv.free(it->first);
        s.computed = 0;
        preempted[it->first] = std::move(s);
        live.erase(it);
        ++preemptions;
      }
    } else if (op < 16 && !live.empty()) {  // n > 1: fork a request whose slots are all computed
      auto it = std::next(live.begin(), static_cast<long>(rng() % live.size()));
      if (it->second.computed != kv.num_tokens(it->first)) continue;
      const int64_t child = next_id++;
      auto copies = kv.fork(it->first, child);
      if (!copies.is_ok()) {
        ASSERT_EQ(copies.status().code(), StatusCode::kResourceExhausted);
        continue;
      }
      for (const BlockCopy& c : *copies)
        for (int64_t i = 0; i < c.num_slots; ++i)
          cache[static_cast<size_t>(c.dst_block * kBs + i)] =
              cache[static_cast<size_t>(c.src_block * kBs + i)];
      live[child] = it->second;
      ++forks;
    } else if (!live.empty()) {  // finish or abort
      auto it = std::next(live.begin(), static_cast<long>(rng() % live.size()));
      kv.free(it->first);
      live.erase(it);
    }

    ASSERT_TRUE(kv.check_invariants()) << "step " << step;
    ASSERT_EQ(kv.num_used_blocks() + kv.num_free_blocks(), kv.num_total_blocks());
    for (const auto& [id, s] : live) {
      ASSERT_EQ(kv.num_tokens(id), s.computed) << "request " << id;
      for (int64_t p = 0; p < s.computed; ++p)
        ASSERT_EQ(cache[static_cast<size_t>(kv.slot(id, p))], s.toks[static_cast<size_t>(p)])
            << "step " << step << ", request " << id << ", position " << p;
    }
  }
  EXPECT_GT(kv.prefix_cache_hit_tokens(), 0);
  EXPECT_GT(kv.pool().num_evicted_blocks(), 0);
  EXPECT_GT(preemptions, 0);
  EXPECT_GT(forks, 0);
  for (const auto& [id, s] : live) kv.free(id);
  EXPECT_EQ(kv.num_free_blocks(), kv.num_total_blocks());
  EXPECT_TRUE(kv.check_invariants());
}

}  // namespace
}  // namespace longctx
