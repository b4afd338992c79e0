// The correctness rule of DESIGN.md §3 on CPU ranks: every layout produces the logits
// of the single-rank DenseModel (fp32, ≤ 1e-4 relative) and the transformers greedy
// tokens, decoding through the sharded forward; and each rank holds its share of the KV.
#include "model/sharded_dense_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <ostream>
#include <string>
#include <vector>

#include "ops/cpu/sampling.h"
#include "parallel/host_communicator.h"
#include "support/sharded_harness.h"

namespace longctx {
namespace {

using namespace testing_support;

ParallelConfig layout_of(int tp, int dcp = 1, int kvp = 1, int pp = 1, int64_t kvp_shard = 0,
                         int64_t interleave = 1, int cp = 1) {
  ParallelConfig c;
  c.cp = cp;
  c.tp = tp;
  c.dcp = dcp;
  c.kvp = kvp;
  c.pp = pp;
  c.kvp_shard_tokens = kvp_shard;
  c.dcp_interleave = interleave;
  return c;
}

// Helix: attention KVP = kvp × TPA = tp, then o_proj and the FFN as TP over kvp·tp.
ParallelConfig helix(ParallelConfig c) {
  c.helix = true;
  return c;
}

struct LayoutCase {
  const char* label;
  ParallelConfig cfg;
};

void PrintTo(const LayoutCase& c, std::ostream* os) { *os << c.label; }

// The fixtures have 4 query heads, 2 kv heads and 2 layers: tp 4 replicates each kv
// head twice, which is what DCP 2 shards.
std::vector<LayoutCase> layout_table() {
  return {
      {"tp1", layout_of(1)},
      {"tp2", layout_of(2)},
      {"tp4", layout_of(4)},
      {"tp4_dcp2", layout_of(4, 2)},
      {"tp4_dcp2_i16", layout_of(4, 2, 1, 1, 0, 16)},
      {"kvp2", layout_of(1, 1, 2, 1, 64)},
      {"kvp3", layout_of(1, 1, 3, 1, 16)},
      {"tp2_kvp2", layout_of(2, 1, 2, 1, 16)},
      {"tp4_dcp2_kvp2", layout_of(4, 2, 2, 1, 32)},
      {"pp2", layout_of(1, 1, 1, 2)},
      {"tp2_pp2", layout_of(2, 1, 1, 2)},
      {"tp4_dcp2_kvp2_pp2", layout_of(4, 2, 2, 2, 16)},
      {"cp2", layout_of(1, 1, 1, 1, 0, 1, 2)},
      {"cp4", layout_of(1, 1, 1, 1, 0, 1, 4)},
      {"tp2_cp2", layout_of(2, 1, 1, 1, 0, 1, 2)},
      {"tp4_dcp2_cp2", layout_of(4, 2, 1, 1, 0, 1, 2)},
      {"cp2_kvp2", layout_of(1, 1, 2, 1, 16, 1, 2)},
      {"tp2_cp2_pp2", layout_of(2, 1, 1, 2, 0, 1, 2)},
      {"tp4_dcp2_cp2_kvp2_pp2", layout_of(4, 2, 2, 2, 32, 1, 2)},
      // Helix: heads after the all-to-all 2|2 (kvp2), 1|1 per TPA rank (kvp2·tpa2),
      // 1|1|2 with an uneven 53|53|54 FFN split and a replicated LM head (kvp3), 1 each (kvp4).
      {"helix_tpa2", helix(layout_of(2))},
      {"helix_kvp2", helix(layout_of(1, 1, 2, 1, 64))},
      {"helix_kvp2_tpa2", helix(layout_of(2, 1, 2, 1, 16))},
      {"helix_kvp3", helix(layout_of(1, 1, 3, 1, 16))},
      {"helix_kvp4", helix(layout_of(1, 1, 4, 1, 32))},
      {"helix_kvp2_tpa2_pp2", helix(layout_of(2, 1, 2, 2, 32))},
      {"helix_kvp3_pp2", helix(layout_of(1, 1, 3, 2, 16))},
  };
}

std::string layout_test_name(const ::testing::TestParamInfo<std::tuple<std::string, LayoutCase>>& p) {
  return std::get<0>(p.param) + "_" + std::get<1>(p.param).label;
}

class ShardedLayoutTest : public ::testing::TestWithParam<std::tuple<std::string, LayoutCase>> {};

TEST_P(ShardedLayoutTest, LogitsAndGreedyTokensMatchSingleRank) {
  const auto& [name, lc] = GetParam();
  const ShardedFixture& m = sharded_fixture(name);
  for (const Golden& g : m.goldens) {
    if (g.ids.size() > 300) continue;  // the 2100-token prompt runs on the representative layouts below
    expect_matches_reference(m, name, lc.cfg, g);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ShardedLayoutTest,
                         ::testing::Combine(::testing::Values("llama_gqa", "qwen2_bias_tied", "qwen3_qknorm"),
                                            ::testing::ValuesIn(layout_table())),
                         layout_test_name);

class ShardedFixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ShardedFixtureTest, LongPromptOnRepresentativeLayouts) {
  const ShardedFixture& m = sharded_fixture(GetParam());
  const Golden& g = longest(m);
  ASSERT_GE(g.ids.size(), 2000u);
  for (const ParallelConfig& pc :
       {layout_of(4, 2), layout_of(2, 1, 3, 1, 704), layout_of(4, 2, 2, 2, 1024, 16),
        layout_of(1, 1, 1, 1, 0, 1, 4), layout_of(4, 2, 1, 1, 0, 1, 2), helix(layout_of(2, 1, 2, 1, 1056)),
        helix(layout_of(1, 1, 3, 2, 704))})
    expect_matches_reference(m, GetParam(), pc, g);
}

TEST_P(ShardedFixtureTest, ChunkedPrefillOverShardedPrefix) {
  // Multi-token query chunks attending over a prefix already spread over ranks.
  const ShardedFixture& m = sharded_fixture(GetParam());
  for (const Golden& g : m.goldens) {
    if (g.ids.size() != 300) continue;
    expect_matches_reference(m, GetParam(), layout_of(4, 2, 2, 1, 64), g, 7);
    expect_matches_reference(m, GetParam(), layout_of(2, 1, 3, 2, 32), g, 64);
    expect_matches_reference(m, GetParam(), layout_of(2, 1, 1, 1, 0, 1, 2), g,
                             64);  // ring over a sharded prefix
    expect_matches_reference(m, GetParam(), layout_of(4, 2, 2, 1, 64, 1, 2), g, 7);
    expect_matches_reference(m, GetParam(), helix(layout_of(2, 1, 2, 1, 64)), g, 7);
    expect_matches_reference(m, GetParam(), helix(layout_of(1, 1, 3, 1, 32)), g, 64);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ShardedFixtureTest,
                         ::testing::Values("llama_gqa", "qwen2_bias_tied", "qwen3_qknorm"));

// KV memory: each rank holds its share of a long request, within one block of 1/k of
// the single-rank block count (k = dcp, cp or kvp, or their product), and no token is stored twice in a
// DCP/KVP group.
TEST(ShardedKV, PerRankBlocksAreAShareOfTheSingleRankCount) {
  const ShardedFixture& m = sharded_fixture("llama_gqa");
  const Golden& g = longest(m);
  const int64_t n = static_cast<int64_t>(g.ids.size());
  const int64_t single_blocks = (n + 15) / 16;
  struct Case {
    ParallelConfig cfg;
    int shards;
  };
  for (const Case& c :
       {Case{layout_of(4, 2), 2}, Case{layout_of(4, 2, 1, 1, 0, 16), 2}, Case{layout_of(1, 1, 3, 1, 704), 3},
        Case{layout_of(4, 2, 3, 1, 704), 6}, Case{layout_of(1, 1, 1, 1, 0, 1, 2), 2},
        Case{layout_of(1, 1, 1, 1, 0, 1, 4), 4}, Case{layout_of(4, 2, 1, 1, 0, 1, 2), 4},
        Case{helix(layout_of(2, 1, 2, 1, 1056)), 2}, Case{helix(layout_of(1, 1, 3, 1, 704)), 3}}) {
    ParallelConfig pc = c.cfg;
    const ShardedRun run = run_sharded(m, pc, g);
    auto layout = ParallelLayout::create(pc, m.dims()).value();
    int64_t total_tokens = 0;
    for (int r = 0; r < layout.world_size(); ++r) {
      const RankShare& s = run.shares[size_t(r)];
      EXPECT_LE(std::abs(double(s.blocks) - double(single_blocks) / c.shards), 1.0)
          << layout.to_string() << " rank " << r << " holds " << s.blocks << " blocks of " << single_blocks;
      if (layout.coords(r).tp % layout.kv_head_replication() < pc.dcp) total_tokens += s.tokens;
    }
    // Sum over one DCP group of each KVP group per kv head: every token exactly once per kv head.
    EXPECT_EQ(total_tokens, n * (pc.tp / layout.kv_head_replication())) << layout.to_string();
  }
  // Without DCP, tp 4 > H 2 duplicates every token twice (kv_duplication 2).
  auto dup = ParallelLayout::create(layout_of(4), m.dims()).value();
  EXPECT_EQ(dup.kv_duplication(), 2);
  const ShardedRun run = run_sharded(m, layout_of(4), g);
  for (const RankShare& s : run.shares) EXPECT_EQ(s.tokens, n);
}

// Two requests in one forward: one prefilling its whole prompt while another decodes.
TEST(ShardedBatch, PrefillAndDecodeOfDifferentRequestsInOneStep) {
  const ShardedFixture& m = sharded_fixture("qwen3_qknorm");
  const Golden* a = golden_of_length(m, 33);
  const Golden* b = golden_of_length(m, 300);
  ASSERT_TRUE(a && b);
  const Trace& ra = m.reference.at(a->ids.size());
  const Trace& rb = m.reference.at(b->ids.size());
  std::vector<Tensor> got;
  const Status st = prefill_beside_decode(m, layout_of(4, 2, 2, 1, 128), *a, *b, got);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  const int64_t vocab = m.cfg.vocab_size;
  EXPECT_LE(relative_error(got[0].slice(0, 0, 1).clone(), ra.step_logits.slice(0, 0, 1).clone()),
            kShardedTolerance);
  EXPECT_LE(relative_error(got[0].slice(0, 1, 2).clone(), rb.step_logits.slice(0, 1, 2).clone()),
            kShardedTolerance);
  EXPECT_EQ(got[0].size(1), vocab);
}

// The 2100-token prompt batched with other requests: prefilled beside a short prompt,
// then decoded beside that prompt's decode and a third request's whole prefill. Under
// Helix the short requests' tokens all sit on KVP rank 0 (shard 704/1056 tokens), so the
// other KVP ranks merge an empty shard for them.
TEST(ShardedBatch, LongPromptBatchedWithOtherRequests) {
  const ShardedFixture& m = sharded_fixture("qwen2_bias_tied");
  const Golden& lg = longest(m);
  const Golden* a = golden_of_length(m, 33);
  const Golden* b = golden_of_length(m, 300);
  ASSERT_TRUE(a && b);
  ASSERT_GE(lg.ids.size(), 2000u);
  const int64_t vocab = m.cfg.vocab_size;
  const auto last = [](const Golden& g) { return static_cast<int64_t>(g.ids.size()) - 1; };
  for (const ParallelConfig& pc :
       {helix(layout_of(2, 1, 2, 1, 1056)), helix(layout_of(1, 1, 3, 1, 704)), layout_of(4, 2, 2, 1, 1056)}) {
    auto layout = ParallelLayout::create(pc, m.dims()).value();
    HostWorld world(layout.world_size());
    std::vector<Tensor> first(static_cast<size_t>(layout.world_size())), second(first.size());
    const Status st = run_on_ranks(world, [&](int r) -> Status {
      LONGCTX_ASSIGN_OR_RETURN(ShardedDenseModel model,
                               ShardedDenseModel::shard(m.cfg, m.weights, layout, r));
      RankCommunicators comms = RankCommunicators::host(world, layout, r);
      ShardedSequenceKV kvl = model.new_kv(2200), kva = model.new_kv(64), kvb = model.new_kv(320);
      std::vector<ShardedStep> prefill{{lg.ids, &kvl, {last(lg)}}, {a->ids, &kva, {last(*a)}}};
      LONGCTX_ASSIGN_OR_RETURN(first[size_t(r)], model.forward(prefill, comms));
      const int32_t next_a[1] = {a->greedy[0]}, next_l[1] = {lg.greedy[0]};
      std::vector<ShardedStep> mixed{{next_a, &kva, {0}}, {next_l, &kvl, {0}}, {b->ids, &kvb, {last(*b)}}};
      LONGCTX_ASSIGN_OR_RETURN(second[size_t(r)], model.forward(mixed, comms));
      return Status::ok();
    });
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    const std::string what = layout.to_string();
    const auto row = [](const Tensor& t, int64_t i) { return t.slice(0, i, i + 1).clone(); };
    const Trace &rl = m.reference.at(lg.ids.size()), &ra = m.reference.at(a->ids.size()),
                &rb = m.reference.at(b->ids.size());
    ASSERT_EQ(first[0].size(0), 2);
    ASSERT_EQ(second[0].size(0), 3);
    EXPECT_EQ(first[0].size(1), vocab);
    EXPECT_LE(relative_error(row(first[0], 0), row(rl.step_logits, 0)), kShardedTolerance) << what;
    EXPECT_LE(relative_error(row(first[0], 1), row(ra.step_logits, 0)), kShardedTolerance) << what;
    EXPECT_LE(relative_error(row(second[0], 0), row(ra.step_logits, 1)), kShardedTolerance) << what;
    EXPECT_LE(relative_error(row(second[0], 1), row(rl.step_logits, 1)), kShardedTolerance) << what;
    EXPECT_LE(relative_error(row(second[0], 2), row(rb.step_logits, 0)), kShardedTolerance) << what;
    // The greedy tokens of transformers follow from these logits.
    EXPECT_EQ(cpu::argmax(second[0].data<float>() + 1 * vocab, vocab), lg.greedy[1]) << what;
    EXPECT_EQ(cpu::argmax(second[0].data<float>(), vocab), a->greedy[1]) << what;
    for (size_t r = 1; r < first.size(); ++r) {
      EXPECT_TRUE(bitwise_equal(first[r], first[0])) << what << " rank " << r;
      EXPECT_TRUE(bitwise_equal(second[r], second[0])) << what << " rank " << r;
    }
  }
}

TEST(ShardedErrors, BadTokenIsRejectedOnEveryRankAndNothingIsWritten) {
  const ShardedFixture& m = sharded_fixture("llama_gqa");
  auto layout = ParallelLayout::create(layout_of(4, 2), m.dims()).value();
  HostWorld world(layout.world_size());
  const Status st = run_on_ranks(world, [&](int r) -> Status {
    LONGCTX_ASSIGN_OR_RETURN(ShardedDenseModel model, ShardedDenseModel::shard(m.cfg, m.weights, layout, r));
    RankCommunicators comms = RankCommunicators::host(world, layout, r);
    ShardedSequenceKV kv = model.new_kv(8);
    const std::vector<int32_t> ids{5, 512, 7};
    const std::vector<int64_t> rows{2};
    auto out = model.forward(ids, kv, rows, comms);
    if (out.is_ok() || kv.num_tokens() != 0) return internal_error("a bad token was accepted");
    return out.status();
  });
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("token id 512 at index 1"), std::string::npos) << st.message();
}

TEST(ShardedErrors, HelixWithoutItsCommunicatorIsRefused) {
  const ShardedFixture& m = sharded_fixture("llama_gqa");
  auto layout = ParallelLayout::create(helix(layout_of(1)), m.dims()).value();
  HostWorld world(1);
  auto model = ShardedDenseModel::shard(m.cfg, m.weights, layout, 0);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  RankCommunicators comms = RankCommunicators::host(world, layout, 0);
  ASSERT_NE(comms.helix, nullptr);
  comms.helix.reset();
  ShardedSequenceKV kv = model->new_kv(8);
  const std::vector<int32_t> ids{5, 6};
  const std::vector<int64_t> rows{1};
  auto out = model->forward(ids, kv, rows, comms);
  ASSERT_FALSE(out.is_ok());
  EXPECT_NE(out.status().message().find("no helix communicator"), std::string::npos)
      << out.status().message();
  EXPECT_EQ(kv.num_tokens(), 0);
}

TEST(ShardedErrors, LayoutBuiltForAnotherModelIsRefused) {
  const ShardedFixture& m = sharded_fixture("llama_gqa");
  auto other = ParallelLayout::create(layout_of(2), {8, 2, 2}).value();
  auto model = ShardedDenseModel::shard(m.cfg, m.weights, other, 0);
  ASSERT_FALSE(model.is_ok());
  EXPECT_EQ(model.status().code(), StatusCode::kInvalidArgument);
}

TEST(ShardedDeterminism, SameLayoutTwiceIsBitwiseIdentical) {
  const ShardedFixture& m = sharded_fixture("qwen2_bias_tied");
  const Golden& g = m.goldens[1];
  const ParallelConfig pc = layout_of(4, 2, 2, 1, 16);
  const ShardedRun a = run_sharded(m, pc, g), b = run_sharded(m, pc, g);
  EXPECT_TRUE(bitwise_equal(a.trace.prompt_logits, b.trace.prompt_logits));
  EXPECT_TRUE(bitwise_equal(a.trace.step_logits, b.trace.step_logits));
}

}  // namespace
}  // namespace longctx
