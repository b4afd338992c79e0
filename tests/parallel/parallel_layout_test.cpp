#include "parallel/parallel_layout.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace longctx {
namespace {

// The fixtures' shape: 4 query heads, 2 kv heads, 2 layers.
constexpr LayoutModelDims kFixture{4, 2, 2};

ParallelConfig cfg(int tp, int dcp = 1, int kvp = 1, int pp = 1, int cp = 1) {
  ParallelConfig c;
  c.tp = tp;
  c.dcp = dcp;
  c.kvp = kvp;
  c.pp = pp;
  c.cp = cp;
  if (kvp > 1) c.kvp_shard_tokens = 64;
  return c;
}

std::string rejection(const ParallelConfig& c, const LayoutModelDims& d = kFixture) {
  const Status s = ParallelLayout::validate(c, d);
  EXPECT_FALSE(s.is_ok()) << "accepted an invalid layout";
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  return s.message();
}

TEST(ParallelLayout, RanksAndCoordinatesAreABijection) {
  auto l = ParallelLayout::create(cfg(4, 2, 3, 2, 2), kFixture);
  ASSERT_TRUE(l.is_ok()) << l.status().to_string();
  EXPECT_EQ(l->world_size(), 4 * 3 * 2 * 2);
  for (int r = 0; r < l->world_size(); ++r) {
    const RankCoords c = l->coords(r);
    EXPECT_EQ(l->rank_of(c), r);
    EXPECT_EQ(c.dcp, c.tp % 2);
  }
  EXPECT_EQ(l->coords(0).tp, 0);
  EXPECT_EQ(l->coords(1).tp, 1);  // tp is innermost
  EXPECT_EQ(l->coords(4).cp, 1);
  EXPECT_EQ(l->coords(8).kvp, 1);
  EXPECT_EQ(l->coords(24).pp, 1);
}

TEST(ParallelLayout, GroupsPartitionTheWorldAndContainTheRank) {
  auto l = ParallelLayout::create(cfg(4, 2, 3, 2, 2), kFixture);
  ASSERT_TRUE(l.is_ok());
  using GroupFn = ProcessGroup (ParallelLayout::*)(int) const;
  const std::pair<GroupFn, int> kinds[] = {{&ParallelLayout::tp_group, 4},
                                           {&ParallelLayout::dcp_group, 2},
                                           {&ParallelLayout::cp_group, 2},
                                           {&ParallelLayout::kvp_group, 3},
                                           {&ParallelLayout::pp_group, 2}};
  for (const auto& [fn, size] : kinds) {
    std::set<std::vector<int>> distinct;
    for (int r = 0; r < l->world_size(); ++r) {
      const ProcessGroup g = ((*l).*fn)(r);
      EXPECT_EQ(g.size(), size) << g.name;
      EXPECT_GE(g.index_of(r), 0) << g.name << " lacks rank " << r;
      distinct.insert(g.ranks);
    }
    EXPECT_EQ(static_cast<int>(distinct.size()) * size, l->world_size());  // a partition
  }
  // The DCP group is a run of consecutive ranks inside the TP group.
  const ProcessGroup dcp = l->dcp_group(3);
  EXPECT_EQ(dcp.ranks, (std::vector<int>{2, 3}));
  EXPECT_EQ(l->tp_group(3).ranks, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(l->kvp_group(1).ranks, (std::vector<int>{1, 9, 17}));
}

TEST(ParallelLayout, HeadsAndReplication) {
  auto tp2 = ParallelLayout::create(cfg(2), kFixture);
  ASSERT_TRUE(tp2.is_ok());
  EXPECT_EQ(tp2->num_local_q_heads(), 2);
  EXPECT_EQ(tp2->num_local_kv_heads(), 1);
  EXPECT_EQ(tp2->first_kv_head(1), 1);
  EXPECT_EQ(tp2->kv_duplication(), 1);

  auto tp4 = ParallelLayout::create(cfg(4), kFixture);
  ASSERT_TRUE(tp4.is_ok());
  EXPECT_EQ(tp4->num_local_q_heads(), 1);
  EXPECT_EQ(tp4->num_local_kv_heads(), 1);
  EXPECT_EQ(tp4->first_kv_head(0), 0);
  EXPECT_EQ(tp4->first_kv_head(1), 0);
  EXPECT_EQ(tp4->first_kv_head(2), 1);
  EXPECT_EQ(tp4->kv_head_replication(), 2);
  EXPECT_EQ(tp4->kv_duplication(), 2);  // tp 4 > H 2: each kv head on 2 ranks

  auto dcp2 = ParallelLayout::create(cfg(4, 2), kFixture);
  ASSERT_TRUE(dcp2.is_ok());
  EXPECT_EQ(dcp2->kv_duplication(), 1);  // DCP removes it

  // The DESIGN.md examples: MLA (H = 1) at tp 8 is 8×, dcp 8 removes it; tp 16, dcp 8 leaves 2×.
  auto mla = ParallelLayout::create(cfg(8), {128, 1, 61});
  ASSERT_TRUE(mla.is_ok());
  EXPECT_EQ(mla->kv_duplication(), 8);
  auto mla8 = ParallelLayout::create(cfg(8, 8), {128, 1, 61});
  ASSERT_TRUE(mla8.is_ok());
  EXPECT_EQ(mla8->kv_duplication(), 1);
  auto kimi = ParallelLayout::create(cfg(16, 8), {64, 1, 61});
  ASSERT_TRUE(kimi.is_ok());
  EXPECT_EQ(kimi->kv_duplication(), 2);
}

TEST(ParallelLayout, TokenPlacement) {
  ParallelConfig c = cfg(4, 2);
  auto rr = ParallelLayout::create(c, kFixture);
  ASSERT_TRUE(rr.is_ok());
  for (int64_t n = 0; n < 10; ++n) EXPECT_EQ(rr->dcp_rank_of_token(n), n % 2);
  EXPECT_TRUE(rr->stores_new_token(0, 0, 1, 0));
  EXPECT_FALSE(rr->stores_new_token(1, 0, 1, 0));
  EXPECT_TRUE(rr->stores_new_token(3, 1, 2, 0));

  c.dcp_interleave = 16;
  auto il = ParallelLayout::create(c, kFixture);
  ASSERT_TRUE(il.is_ok());
  EXPECT_EQ(il->dcp_rank_of_token(15), 0);
  EXPECT_EQ(il->dcp_rank_of_token(16), 1);
  EXPECT_EQ(il->dcp_rank_of_token(32), 0);

  auto kv = ParallelLayout::create(cfg(1, 1, 3), kFixture);  // shards of 64 tokens
  ASSERT_TRUE(kv.is_ok());
  EXPECT_EQ(kv->kvp_rank_of_token(63), 0);
  EXPECT_EQ(kv->kvp_rank_of_token(64), 1);
  EXPECT_EQ(kv->kvp_rank_of_token(128), 2);
  EXPECT_EQ(kv->kvp_rank_of_token(100000), 2);  // the last group takes the overflow
}

TEST(ParallelLayout, ContextParallelSplitIsZigZag) {
  auto l = ParallelLayout::create(cfg(1, 1, 1, 1, 2), kFixture);
  ASSERT_TRUE(l.is_ok());
  // 8 tokens over cp 2: parts of 2 tokens, ranks 0 1 1 0.
  std::vector<int> owners;
  for (int64_t i = 0; i < 8; ++i) owners.push_back(l->cp_rank_of_new_token(i, 8, 100));
  EXPECT_EQ(owners, (std::vector<int>{0, 0, 1, 1, 1, 1, 0, 0}));
  // Uneven: 10 tokens → parts [0,2) [2,5) [5,7) [7,10).
  owners.clear();
  for (int64_t i = 0; i < 10; ++i) owners.push_back(l->cp_rank_of_new_token(i, 10, 0));
  EXPECT_EQ(owners, (std::vector<int>{0, 0, 1, 1, 1, 1, 1, 0, 0, 0}));
  // A decode token goes round-robin by position.
  EXPECT_EQ(l->cp_rank_of_new_token(0, 1, 41), 1);
  EXPECT_EQ(l->cp_rank_of_new_token(0, 1, 42), 0);
  // Each rank does the same causal work for a long chunk: Σ (pos + 1) over its tokens.
  auto l4 = ParallelLayout::create(cfg(1, 1, 1, 1, 4), kFixture);
  ASSERT_TRUE(l4.is_ok());
  std::vector<int64_t> work(4, 0);
  for (int64_t i = 0; i < 800; ++i) work[size_t(l4->cp_rank_of_new_token(i, 800, 0))] += i + 1;
  for (int r = 1; r < 4; ++r) EXPECT_EQ(work[size_t(r)], work[0]);
}

TEST(ParallelLayout, PipelineStagesCoverTheLayers) {
  auto l = ParallelLayout::create(cfg(1, 1, 1, 3), {4, 2, 7});
  ASSERT_TRUE(l.is_ok());
  EXPECT_EQ(l->first_layer(0), 0);
  EXPECT_EQ(l->end_layer(0), 3);
  EXPECT_EQ(l->end_layer(1), 5);
  EXPECT_EQ(l->end_layer(2), 7);
}

TEST(ParallelLayout, InvalidLayoutsNameTheRuleTheyBreak) {
  EXPECT_NE(rejection(cfg(4, 3)).find("--dcp 3 must divide --tp 4"), std::string::npos);
  // tp 2 = H: nothing is replicated, so there is nothing for DCP to shard.
  EXPECT_NE(rejection(cfg(2, 2)).find("must lie in [1, tp/H] = [1, 1]"), std::string::npos);
  EXPECT_NE(rejection(cfg(8, 8), {8, 2, 2}).find("must lie in [1, tp/H] = [1, 4]"), std::string::npos);
  EXPECT_NE(rejection(cfg(12, 2), {12, 4, 2}).find("--dcp 2 must divide tp/H = 3"), std::string::npos);
  ParallelConfig world = cfg(2, 1, 2);
  world.world_size = 6;
  EXPECT_NE(rejection(world).find("world size 6 does not match tp·pp·cp·kvp"), std::string::npos);
  ParallelConfig small = cfg(1, 1, 2);
  small.kvp_shard_tokens = 8;
  EXPECT_NE(rejection(small).find("--kvp-shard-tokens 8 is smaller than a KV block (16 tokens)"),
            std::string::npos);
  ParallelConfig ragged = cfg(1, 1, 2);
  ragged.kvp_shard_tokens = 40;
  EXPECT_NE(rejection(ragged).find("multiple of the block size"), std::string::npos);
  ParallelConfig none = cfg(1, 1, 2);
  none.kvp_shard_tokens = 0;
  EXPECT_NE(rejection(none).find("needs --kvp-shard-tokens"), std::string::npos);
  EXPECT_NE(rejection(cfg(8)).find("--tp 8 must divide the model's 4 query heads"), std::string::npos);
  EXPECT_NE(rejection(cfg(4), {6, 6, 2}).find("--tp 4 must divide the model's 6 query heads"),
            std::string::npos);
  EXPECT_NE(rejection(cfg(2), {6, 3, 2}).find("must divide the model's 3 kv heads"), std::string::npos);
  EXPECT_NE(rejection(cfg(1, 1, 1, 3)).find("--pp 3 exceeds the model's 2 layers"), std::string::npos);
  EXPECT_NE(rejection(cfg(0)).find("--tp 0 must be at least 1"), std::string::npos);
  ParallelConfig il = cfg(4, 2);
  il.dcp_interleave = 8;
  EXPECT_NE(
      rejection(il).find("--dcp-interleave 8 must be 1 (token round-robin) or a multiple of the block size"),
      std::string::npos);
}

ParallelConfig helix(ParallelConfig c) {
  c.helix = true;
  return c;
}

// `--helix --kvp K --tp T`: attention KVP K × TPA T, then one TP group of K·T for the FFN.
TEST(ParallelLayout, HelixGroupIsTheKvpTimesTpaRanksOfAStage) {
  auto l = ParallelLayout::create(helix(cfg(2, 1, 2, 2)), kFixture);
  ASSERT_TRUE(l.is_ok()) << l.status().to_string();
  EXPECT_EQ(l->world_size(), 8);
  EXPECT_EQ(l->helix_size(), 4);
  EXPECT_EQ(l->to_string(), "tp=2 dcp=1 cp=1 kvp=2 pp=2 kvp_shard_tokens=64 helix (ffn tp=4)");
  std::set<std::vector<int>> distinct;
  for (int r = 0; r < l->world_size(); ++r) {
    const ProcessGroup g = l->helix_group(r);
    ASSERT_EQ(g.size(), 4) << g.name;
    EXPECT_EQ(g.index_of(r), l->helix_index(r)) << g.name;
    for (int m : g.ranks) EXPECT_EQ(l->coords(m).pp, l->coords(r).pp);
    distinct.insert(g.ranks);
  }
  EXPECT_EQ(distinct, (std::set<std::vector<int>>{{0, 1, 2, 3}, {4, 5, 6, 7}}));
  // The attention groups stay what they are: TPA = tp group, KVP = kvp group.
  EXPECT_EQ(l->tp_group(2).ranks, (std::vector<int>{2, 3}));
  EXPECT_EQ(l->kvp_group(1).ranks, (std::vector<int>{1, 3}));
  EXPECT_EQ(l->kv_duplication(), 1);  // TPA <= H: Helix never replicates KV
}

TEST(ParallelLayout, HelixSplitsEachTpaRanksHeadsOverKvp) {
  // tp 1: 4 query heads over kvp 3 → 1, 1, 2 (the shares differ by at most one).
  auto l3 = ParallelLayout::create(helix(cfg(1, 1, 3)), kFixture);
  ASSERT_TRUE(l3.is_ok());
  std::vector<int64_t> bounds;
  for (int k = 0; k <= 3; ++k) bounds.push_back(l3->helix_first_head(k));
  EXPECT_EQ(bounds, (std::vector<int64_t>{0, 1, 2, 4}));
  // tp 2: each TPA rank's 2 heads over kvp 2 → 1 each.
  auto l2 = ParallelLayout::create(helix(cfg(2, 1, 2)), kFixture);
  ASSERT_TRUE(l2.is_ok());
  EXPECT_EQ(l2->helix_first_head(1), 1);
  EXPECT_EQ(l2->helix_first_head(2), 2);
  EXPECT_EQ(ParallelLayout::split_point(160, 3, 1), 53);
  EXPECT_EQ(ParallelLayout::split_point(160, 3, 3), 160);
}

TEST(ParallelLayout, InvalidHelixLayoutsNameTheRuleTheyBreak) {
  const auto says = [](const ParallelConfig& c, const std::string& rule) {
    const std::string message = rejection(c);
    EXPECT_NE(message.find(rule), std::string::npos) << message;
  };
  says(helix(cfg(2, 1, 2, 1, 2)), "--helix does not combine with --cp 2");
  says(helix(cfg(4, 2, 2)), "--helix does not combine with --dcp 2");
  says(helix(cfg(4, 1, 2)),
       "--helix: --tp 4 (TPA, the attention head split) must not exceed the model's 2 kv heads");
  says(helix(cfg(2, 1, 3)), "--helix: --kvp 3 must not exceed the 2 query heads of a TPA rank");
  // The generic rules still hold: tp divides the heads, kvp needs whole-block shards.
  says(helix(cfg(3, 1, 2)), "--tp 3 must divide the model's 4 query heads");
  ParallelConfig small = helix(cfg(1, 1, 2));
  small.kvp_shard_tokens = 8;
  says(small, "--kvp-shard-tokens 8 is smaller than a KV block");
  ParallelConfig world = helix(cfg(2, 1, 2));
  world.world_size = 2;
  says(world, "world size 2 does not match tp·pp·cp·kvp");
}

}  // namespace
}  // namespace longctx
