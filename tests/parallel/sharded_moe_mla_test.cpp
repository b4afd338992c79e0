// Mixture-of-experts and MLA models under parallel layouts on CPU ranks (issue #8 item 3):
// TP-split experts, expert parallelism (--ep) composed with TP, KVP, CP and PP, and
// DeepSeek-V3's latent attention under TP × DCP — each producing the logits of the
// single-rank DenseModel (fp32, ≤ 1e-4 relative) and the transformers greedy tokens,
// decoding through the sharded forward; MLA's latent cache sharded by DCP.
#include <gtest/gtest.h>

#include <cmath>
#include <ostream>
#include <string>
#include <vector>

#include "model/sharded_dense_model.h"
#include "ops/cpu/sampling.h"
#include "parallel/host_communicator.h"
#include "support/sharded_harness.h"

namespace longctx {
namespace {

using namespace testing_support;

struct Layout {
  int tp = 1, ep = 1, dcp = 1, kvp = 1, pp = 1, cp = 1;
  int64_t kvp_shard = 0;
  bool helix = false;  // attention kvp × tp (TPA), the FFN over all kvp·tp ranks
  ParallelConfig config() const {
    ParallelConfig c;
    c.tp = tp;
    c.ep = ep;
    c.dcp = dcp;
    c.kvp = kvp;
    c.pp = pp;
    c.cp = cp;
    c.kvp_shard_tokens = kvp_shard;
    c.helix = helix;
    return c;
  }
};

struct LayoutCase {
  const char* label;
  Layout layout;
};

void PrintTo(const LayoutCase& c, std::ostream* os) { *os << c.label; }

// The fixtures have 4 query heads, 2 kv heads (MLA: one latent), 2–3 layers and 4
// (Mixtral) or 8 routed experts. EP needs no ranks of its own: ep divides tp·cp·kvp.
std::vector<LayoutCase> layout_table() {
  return {
      {"tp2", {.tp = 2}},
      {"tp4", {.tp = 4}},
      {"tp2_ep2", {.tp = 2, .ep = 2}},
      {"tp4_ep4", {.tp = 4, .ep = 4}},
      {"tp4_ep2", {.tp = 4, .ep = 2}},
      {"kvp2_ep2", {.ep = 2, .kvp = 2, .kvp_shard = 32}},
      {"tp2_kvp2_ep4", {.tp = 2, .ep = 4, .kvp = 2, .kvp_shard = 16}},
      {"tp2_kvp2_ep2", {.tp = 2, .ep = 2, .kvp = 2, .kvp_shard = 16}},
      {"tp2_pp2_ep2", {.tp = 2, .ep = 2, .pp = 2}},
      {"kvp2_pp2_ep2", {.ep = 2, .kvp = 2, .pp = 2, .kvp_shard = 16}},
      {"tp4_dcp2_ep4", {.tp = 4, .ep = 4, .dcp = 2}},
      {"tp2_dcp2", {.tp = 2, .dcp = 2}},
      {"tp2_dcp2_ep2", {.tp = 2, .ep = 2, .dcp = 2}},
      {"tp4_dcp4_ep4", {.tp = 4, .ep = 4, .dcp = 4}},
      {"tp2_dcp2_kvp2_ep4", {.tp = 2, .ep = 4, .dcp = 2, .kvp = 2, .kvp_shard = 16}},
      {"tp2_dcp2_pp2_ep2", {.tp = 2, .ep = 2, .dcp = 2, .pp = 2}},
      {"kvp4_ep4", {.ep = 4, .kvp = 4, .kvp_shard = 16}},
      {"helix_kvp2_tp2", {.tp = 2, .kvp = 2, .kvp_shard = 16, .helix = true}},
      {"helix_kvp2_tp2_ep4", {.tp = 2, .ep = 4, .kvp = 2, .kvp_shard = 16, .helix = true}},
      {"helix_kvp2_tp2_ep2", {.tp = 2, .ep = 2, .kvp = 2, .kvp_shard = 32, .helix = true}},
      {"helix_kvp2_ep2", {.ep = 2, .kvp = 2, .kvp_shard = 16, .helix = true}},
      {"helix_kvp4", {.kvp = 4, .kvp_shard = 16, .helix = true}},
      {"helix_kvp4_ep4", {.ep = 4, .kvp = 4, .kvp_shard = 16, .helix = true}},
      {"helix_kvp2_ep2_pp2", {.ep = 2, .kvp = 2, .pp = 2, .kvp_shard = 16, .helix = true}},
      {"helix_kvp2_tp2_ep4_pp2", {.tp = 2, .ep = 4, .kvp = 2, .pp = 2, .kvp_shard = 16, .helix = true}},
      {"cp2_ep2", {.ep = 2, .cp = 2}},
      {"cp2_kvp2_ep4", {.ep = 4, .kvp = 2, .cp = 2, .kvp_shard = 16}},
      {"tp2_dcp2_cp2_ep4", {.tp = 2, .ep = 4, .dcp = 2, .cp = 2}},
      {"cp4", {.cp = 4}},
      {"tp2_cp2_ep4", {.tp = 2, .ep = 4, .cp = 2}},
  };
}

// The table's layouts that apply to a fixture: valid for its head counts (tp4 dcp4 needs
// one kv head, i.e. MLA; Helix's TPA ≤ H leaves MLA tpa 1).
std::vector<LayoutCase> layouts_for(const std::string& name) {
  const ModelConfig cfg = load_model_config(hf_dir(name)).value();
  std::vector<LayoutCase> out;
  for (const LayoutCase& c : layout_table())
    if (ParallelLayout::validate(c.layout.config(), ShardedDenseModel::layout_dims(cfg)).is_ok())
      out.push_back(c);
  return out;
}

std::string layout_test_name(const ::testing::TestParamInfo<LayoutCase>& p) { return p.param.label; }

class MixtralLayoutTest : public ::testing::TestWithParam<LayoutCase> {};
class Qwen3MoeLayoutTest : public ::testing::TestWithParam<LayoutCase> {};
class DeepseekMlaLayoutTest : public ::testing::TestWithParam<LayoutCase> {};

void check_layout(const std::string& name, const LayoutCase& lc) {
  const ShardedFixture& m = sharded_fixture(name);
  for (const Golden& g : m.goldens) {
    if (g.ids.size() > 300) continue;  // the 2100-token prompt runs on representative layouts below
    expect_matches_reference(m, name, lc.layout.config(), g);
  }
}

TEST_P(MixtralLayoutTest, LogitsAndGreedyTokensMatchSingleRank) { check_layout("mixtral_moe", GetParam()); }
TEST_P(Qwen3MoeLayoutTest, LogitsAndGreedyTokensMatchSingleRank) { check_layout("qwen3_moe", GetParam()); }
TEST_P(DeepseekMlaLayoutTest, LogitsAndGreedyTokensMatchSingleRank) {
  check_layout("deepseek_v3_mla", GetParam());
}

INSTANTIATE_TEST_SUITE_P(Layouts, MixtralLayoutTest, ::testing::ValuesIn(layouts_for("mixtral_moe")),
                         layout_test_name);
INSTANTIATE_TEST_SUITE_P(Layouts, Qwen3MoeLayoutTest, ::testing::ValuesIn(layouts_for("qwen3_moe")),
                         layout_test_name);
INSTANTIATE_TEST_SUITE_P(Layouts, DeepseekMlaLayoutTest, ::testing::ValuesIn(layouts_for("deepseek_v3_mla")),
                         layout_test_name);

// The table covers what the issue asks of each fixture.
TEST(MoeMlaLayoutTable, CoversEpTwoAndFourWithTpOneAndTwoAndTpDcpForMla) {
  for (const char* name : {"mixtral_moe", "qwen3_moe", "deepseek_v3_mla"}) {
    bool ep2_tp1 = false, ep2_tp2 = false, ep4_tp1 = false, ep4_tp2 = false, tp2_dcp2 = false;
    bool helix_ep = false;
    for (const LayoutCase& c : layouts_for(name)) {
      const Layout& l = c.layout;
      ep2_tp1 |= l.ep == 2 && l.tp == 1;
      ep2_tp2 |= l.ep == 2 && l.tp == 2;
      ep4_tp1 |= l.ep == 4 && l.tp == 1;
      ep4_tp2 |= l.ep == 4 && l.tp == 2;
      tp2_dcp2 |= l.tp == 2 && l.dcp == 2;
      helix_ep |= l.helix && l.ep == l.tp * l.kvp;  // Helix's FFN as EP over all its ranks
    }
    EXPECT_TRUE(ep2_tp1 && ep2_tp2 && ep4_tp1 && ep4_tp2) << name;
    EXPECT_TRUE(helix_ep) << name;
    if (std::string(name) == "deepseek_v3_mla") {
      EXPECT_TRUE(tp2_dcp2);
    }
  }
}

class MoeMlaFixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(MoeMlaFixtureTest, LongPromptUnderExpertParallelism) {
  const ShardedFixture& m = sharded_fixture(GetParam());
  const Golden& g = longest(m);
  ASSERT_GE(g.ids.size(), 2000u);
  expect_matches_reference(m, GetParam(), Layout{.tp = 2, .ep = 2}.config(), g);
  expect_matches_reference(m, GetParam(), Layout{.tp = 2, .ep = 4, .kvp = 2, .kvp_shard = 1024}.config(), g);
  expect_matches_reference(m, GetParam(), Layout{.tp = 2, .ep = 4, .cp = 2}.config(), g);
  expect_matches_reference(m, GetParam(),
                           Layout{.ep = 2, .kvp = 2, .kvp_shard = 1056, .helix = true}.config(), g);
  if (m.cfg.is_mla()) expect_matches_reference(m, GetParam(), Layout{.tp = 2, .dcp = 2}.config(), g);
}

TEST_P(MoeMlaFixtureTest, ChunkedPrefillOverShardedPrefix) {
  // Multi-token chunks: tokens of a chunk routed to experts on other ranks, attending
  // over a prefix already spread over ranks.
  const ShardedFixture& m = sharded_fixture(GetParam());
  for (const Golden& g : m.goldens) {
    if (g.ids.size() != 300) continue;
    expect_matches_reference(m, GetParam(), Layout{.tp = 2, .ep = 2, .dcp = m.cfg.is_mla() ? 2 : 1}.config(),
                             g, 7);
    expect_matches_reference(m, GetParam(), Layout{.tp = 2, .ep = 4, .kvp = 2, .kvp_shard = 64}.config(), g,
                             64);
    // Ring attention over a prefix already sharded over the CP ranks.
    expect_matches_reference(m, GetParam(), Layout{.ep = 2, .cp = 2}.config(), g, 64);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, MoeMlaFixtureTest,
                         ::testing::Values("mixtral_moe", "qwen3_moe", "deepseek_v3_mla"));

// MLA's latent cache under DCP: each rank holds ~1/dcp of the tokens (within one block),
// every token exactly once in a DCP group, and a block's bytes are those of the latent:
// (kv_lora_rank + qk_rope_head_dim) × local layers × block_size × 4, K and V one memory.
TEST(ShardedMlaKV, LatentTokensShardedOverDcp) {
  const ShardedFixture& m = sharded_fixture("deepseek_v3_mla");
  const Golden& g = longest(m);
  const int64_t n = static_cast<int64_t>(g.ids.size()), single_blocks = (n + 15) / 16;
  const int64_t latent = m.cfg.kv_lora_rank + m.cfg.qk_rope_head_dim;
  for (const Layout& l : {Layout{.tp = 2, .dcp = 2}, Layout{.tp = 4, .dcp = 4}, Layout{.tp = 4, .dcp = 2}}) {
    const ParallelConfig pc = l.config();
    auto layout = ParallelLayout::create(pc, m.dims()).value();
    const ShardedRun run = run_sharded(m, pc, g);
    int64_t group_tokens = 0;
    for (int r = 0; r < layout.world_size(); ++r) {
      const RankShare& s = run.shares[size_t(r)];
      EXPECT_LE(std::abs(double(s.blocks) - double(single_blocks) / pc.dcp), 1.0)
          << layout.to_string() << " rank " << r << " holds " << s.blocks << " blocks of " << single_blocks;
      EXPECT_EQ(s.cache_bytes, latent * m.cfg.num_layers * 16 * 4) << layout.to_string();
      if (r < pc.dcp) group_tokens += s.tokens;
    }
    EXPECT_EQ(group_tokens, n) << layout.to_string() << ": each token once in a DCP group";
    EXPECT_EQ(layout.kv_duplication(), pc.tp / pc.dcp) << layout.to_string();
  }
  // TP alone replicates the one latent on every rank: tp-fold duplication.
  auto dup = ParallelLayout::create(Layout{.tp = 4}.config(), m.dims()).value();
  EXPECT_EQ(dup.kv_duplication(), 4);
}

// Requests batched together: one prefilling while another decodes, their tokens routed
// to the same experts in one dispatch.
TEST(ShardedMoeBatch, PrefillAndDecodeOfDifferentRequestsInOneStep) {
  for (const char* name : {"qwen3_moe", "deepseek_v3_mla"}) {
    const ShardedFixture& m = sharded_fixture(name);
    const Golden* a = golden_of_length(m, 33);
    const Golden* b = golden_of_length(m, 300);
    ASSERT_TRUE(a && b);
    const Trace& ra = m.reference.at(a->ids.size());
    const Trace& rb = m.reference.at(b->ids.size());
    const ParallelConfig pc = m.cfg.is_mla()
                                  ? Layout{.tp = 2, .ep = 4, .dcp = 2, .kvp = 2, .kvp_shard = 128}.config()
                                  : Layout{.tp = 2, .ep = 4, .kvp = 2, .kvp_shard = 128}.config();
    std::vector<Tensor> got;
    const Status st = prefill_beside_decode(m, pc, *a, *b, got);
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    EXPECT_LE(relative_error(got[0].slice(0, 0, 1).clone(), ra.step_logits.slice(0, 0, 1).clone()),
              kShardedTolerance)
        << name;
    EXPECT_LE(relative_error(got[0].slice(0, 1, 2).clone(), rb.step_logits.slice(0, 1, 2).clone()),
              kShardedTolerance)
        << name;
    EXPECT_EQ(cpu::argmax(got[0].data<float>(), m.cfg.vocab_size), a->greedy[0]) << name;
  }
}

TEST(ShardedMoeDeterminism, SameExpertParallelLayoutTwiceIsBitwiseIdentical) {
  const ShardedFixture& m = sharded_fixture("qwen3_moe");
  const Golden& g = m.goldens[2];
  const ParallelConfig pc = Layout{.tp = 2, .ep = 4, .kvp = 2, .kvp_shard = 16}.config();
  const ShardedRun a = run_sharded(m, pc, g), b = run_sharded(m, pc, g);
  EXPECT_TRUE(bitwise_equal(a.trace.prompt_logits, b.trace.prompt_logits));
  EXPECT_TRUE(bitwise_equal(a.trace.step_logits, b.trace.step_logits));
}

// EP groups: ep consecutive ranks of a stage; experts split contiguously over them.
TEST(ShardedMoeLayout, EpGroupsAreRunsOfConsecutiveRanksInsideAStage) {
  const ShardedFixture& m = sharded_fixture("qwen3_moe");  // 8 experts
  auto layout =
      ParallelLayout::create(Layout{.tp = 2, .ep = 2, .kvp = 2, .pp = 2, .kvp_shard = 16}.config(), m.dims())
          .value();
  EXPECT_EQ(layout.ep_group(0).ranks, (std::vector<int>{0, 1}));
  EXPECT_EQ(layout.ep_group(3).ranks, (std::vector<int>{2, 3}));
  EXPECT_EQ(layout.ep_group(6).ranks, (std::vector<int>{6, 7}));  // stage 1: ranks 4..7
  EXPECT_EQ(layout.ep_index(5), 1);
  EXPECT_EQ(layout.num_local_experts(), 4);
  EXPECT_EQ(layout.first_expert(1), 4);
  EXPECT_NE(layout.to_string().find("ep=2"), std::string::npos) << layout.to_string();
  auto whole =
      ParallelLayout::create(Layout{.tp = 2, .ep = 4, .kvp = 2, .kvp_shard = 16}.config(), m.dims()).value();
  EXPECT_EQ(whole.ep_group(2).ranks, (std::vector<int>{0, 1, 2, 3}));  // spans the TP and KVP groups
  EXPECT_EQ(whole.num_local_experts(), 2);
}

// Invalid configurations are refused with a message naming the flag and the rule.
TEST(ShardedMoeErrors, EpMustDivideTheExperts) {
  const ShardedFixture& m = sharded_fixture("qwen3_moe");  // 8 experts
  ParallelConfig pc = Layout{.tp = 2, .ep = 2, .kvp = 3, .kvp_shard = 16}.config();
  pc.ep = 3;  // divides tp·kvp = 6 but not 8 experts
  const Status st = ParallelLayout::validate(pc, m.dims());
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("--ep 3 must divide the model's 8 routed experts"), std::string::npos)
      << st.message();
}

TEST(ShardedMoeErrors, EpMustDivideTheRanksOfAStage) {
  const ShardedFixture& m = sharded_fixture("mixtral_moe");
  const Status st = ParallelLayout::validate(Layout{.tp = 2, .ep = 4}.config(), m.dims());
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("--ep 4 must divide the 2 ranks of a pipeline stage"), std::string::npos)
      << st.message();
  const Status zero = ParallelLayout::validate(Layout{.ep = 0}.config(), m.dims());
  ASSERT_FALSE(zero.is_ok());
  EXPECT_NE(zero.message().find("--ep 0 must be at least 1"), std::string::npos) << zero.message();
}

TEST(ShardedMoeErrors, EpOnADenseModelIsRefused) {
  const ShardedFixture& m = sharded_fixture("deepseek_v3_mla");
  // A dense Llama checkpoint's config with the EP layout.
  const ModelWeights llama = load_model_weights("llama_gqa");
  const ModelConfig& dense = llama.cfg;
  auto layout = ParallelLayout::create(Layout{.tp = 2, .ep = 2}.config(),
                                       {dense.num_heads, dense.num_kv_heads, dense.num_layers})
                    .value();
  auto model = ShardedDenseModel::shard(dense, llama.weights, layout, 0);
  ASSERT_FALSE(model.is_ok());
  EXPECT_NE(model.status().message().find("--ep 2 needs a mixture-of-experts model"), std::string::npos)
      << model.status().message();
  // MLA's layout must be built with one latent kv head.
  auto wrong = ParallelLayout::create(Layout{.tp = 2}.config(),
                                      {m.cfg.num_heads, m.cfg.num_kv_heads, m.cfg.num_layers})
                   .value();
  EXPECT_EQ(ShardedDenseModel::shard(m.cfg, m.weights, wrong, 0).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(ShardedMoeErrors, TpMustDivideTheExpertWidthWithoutEp) {
  // qwen3_moe's experts are 48 wide: a TP of 32 ranks... cannot exist with 4 heads, so
  // check the rule through a layout whose FFN group is 4 and a width it does not divide.
  const ShardedFixture& m = sharded_fixture("qwen3_moe");
  ModelConfig cfg = m.cfg;
  DenseWeights w = m.weights;
  for (DenseLayerWeights& lw : w.layers)
    for (ExpertWeights& e : lw.experts) {  // trim each expert to 46 columns (not a multiple of 4)
      const int64_t mi = e.down.size(1), keep = 46;
      Tensor gu = Tensor::empty({2 * keep, e.gate_up.size(1)}, DType::kF32);
      gu.slice(0, 0, keep).copy_from(e.gate_up.slice(0, 0, keep));
      gu.slice(0, keep, 2 * keep).copy_from(e.gate_up.slice(0, mi, mi + keep));
      e.gate_up = gu;
      e.down = e.down.slice(1, 0, keep).contiguous();
    }
  auto layout = ParallelLayout::create(Layout{.tp = 4}.config(), m.dims()).value();
  auto model = ShardedDenseModel::shard(cfg, w, layout, 0);
  ASSERT_FALSE(model.is_ok());
  EXPECT_NE(model.status().message().find("must divide the expert MLP width 46"), std::string::npos)
      << model.status().message();
}

}  // namespace
}  // namespace longctx
