// Mixture-of-experts and MLA models under parallel layouts on CPU ranks (issue #8 item 3):
// TP-split experts, expert parallelism (--ep) composed with TP, KVP, CP and PP, and
// DeepSeek-V3's latent attention under TP × DCP — each producing the logits of the
// single-rank DenseModel (fp32, ≤ 1e-4 relative) and the transformers greedy tokens,
// decoding through the sharded forward; MLA's latent cache sharded by DCP.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "model/dense_model.h"
#include "model/dense_weights.h"
#include "model/safetensors.h"
#include "model/sharded_dense_model.h"
#include "model/sharded_mla_attention.h"
#include "ops/cpu/sampling.h"
#include "parallel/host_communicator.h"
#include "support/fixtures.h"

namespace longctx {
namespace {

const std::string kHf = std::string(LONGCTX_TEST_DATA_DIR) + "/hf/";
constexpr double kTolerance = 1e-4;  // fp32: max|Δ| / max|ref|

using testing_support::Golden;
using testing_support::relative_error;

// Logits of one generation: at the golden positions of the prompt, then at every step.
struct Trace {
  Tensor prompt_logits;  // [P, vocab]
  Tensor step_logits;    // [N, vocab]
  std::vector<int32_t> tokens;
};

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// Rows of a prompt chunk [begin, begin + len) whose logits a trace wants: the golden
// positions, then the last prompt token.
std::vector<int64_t> rows_in(const Golden& g, int64_t begin, int64_t len) {
  std::vector<int64_t> rows;
  for (int64_t p : g.logit_pos)
    if (p >= begin && p < begin + len) rows.push_back(p - begin);
  const int64_t last = static_cast<int64_t>(g.ids.size()) - 1;
  if (last >= begin && last < begin + len) rows.push_back(last - begin);
  return rows;
}

void split_prefill(const Tensor& rows, int64_t p, Trace& t, int64_t steps, int64_t vocab) {
  t.prompt_logits = rows.slice(0, 0, p).clone();
  t.step_logits = Tensor::empty({steps, vocab}, DType::kF32);
  t.step_logits.slice(0, 0, 1).copy_from(rows.slice(0, p, p + 1));
}

struct Model {
  ModelConfig cfg;
  DenseWeights weights;
  std::unique_ptr<DenseModel> dense;
  std::vector<Golden> goldens;
  std::map<size_t, Trace> reference;  // single-rank DenseModel, by prompt length

  LayoutModelDims dims() const;
};

LayoutModelDims dims_of(const ModelConfig& cfg);
LayoutModelDims Model::dims() const { return dims_of(cfg); }

Trace reference_trace(const DenseModel& m, const Golden& g) {
  const int64_t n = static_cast<int64_t>(g.ids.size()), steps = static_cast<int64_t>(g.greedy.size());
  const int64_t vocab = m.config().vocab_size, p = static_cast<int64_t>(g.logit_pos.size());
  SequenceKV kv = m.new_kv(n + steps);
  Trace t;
  auto rows = m.forward(g.ids, kv, rows_in(g, 0, n));
  EXPECT_TRUE(rows.is_ok()) << rows.status().to_string();
  split_prefill(*rows, p, t, steps, vocab);
  t.tokens.push_back(cpu::argmax(t.step_logits.data<float>(), vocab));
  for (int64_t s = 1; s < steps; ++s) {
    const int32_t id[1] = {t.tokens.back()};
    const int64_t row[1] = {0};
    auto out = m.forward(id, kv, row);
    EXPECT_TRUE(out.is_ok()) << out.status().to_string();
    t.step_logits.slice(0, s, s + 1).copy_from(*out);
    t.tokens.push_back(cpu::argmax(out->data<float>(), vocab));
  }
  return t;
}

const Model& fixture(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Model>> cache;
  auto& slot = cache[name];
  if (slot) return *slot;
  slot = std::make_unique<Model>();
  Model& m = *slot;
  m.cfg = load_model_config(kHf + name).value();
  auto ckpt = Checkpoint::open(kHf + name);
  m.weights = load_dense_weights(ckpt.value(), m.cfg, std::nullopt).value();
  m.dense = std::make_unique<DenseModel>(DenseModel::load(kHf + name).value());
  for (Golden& g : testing_support::load_goldens(name)) {
    m.reference[g.ids.size()] = reference_trace(*m.dense, g);
    m.goldens.push_back(std::move(g));
  }
  return m;
}

struct RankShare {
  int64_t tokens = 0, blocks = 0, cache_bytes = 0;
};

struct ShardedRun {
  Trace trace;                    // from the root rank (tp 0 of the last stage)
  std::vector<RankShare> shares;  // per rank, after the prefill
};

// Prefills g (in chunks of `chunk` tokens, 0 = whole) and decodes greedily through the
// sharded forward on every rank; checks that all logit ranks agree bitwise.
ShardedRun run_sharded(const Model& m, const ParallelConfig& pc, const Golden& g, int64_t chunk = 0) {
  ShardedRun run;
  auto layout = ParallelLayout::create(pc, m.dims());
  EXPECT_TRUE(layout.is_ok()) << layout.status().to_string();
  if (!layout.is_ok()) return run;
  const int world_size = layout->world_size();
  const int root = layout->rank_of({0, 0, 0, pc.pp - 1, 0});
  const int64_t n = static_cast<int64_t>(g.ids.size()), steps = static_cast<int64_t>(g.greedy.size());
  const int64_t vocab = m.cfg.vocab_size, p = static_cast<int64_t>(g.logit_pos.size());
  if (chunk <= 0) chunk = n;
  std::vector<Trace> traces(static_cast<size_t>(world_size));
  run.shares.resize(static_cast<size_t>(world_size));
  HostWorld world(world_size);
  const Status st = run_on_ranks(world, [&](int r) -> Status {
    LONGCTX_ASSIGN_OR_RETURN(ShardedDenseModel model, ShardedDenseModel::shard(m.cfg, m.weights, *layout, r));
    RankCommunicators comms = RankCommunicators::host(world, *layout, r);
    ShardedSequenceKV kv = model.new_kv(n + steps);
    Trace& t = traces[size_t(r)];
    Tensor prefill_rows = Tensor::empty({p + 1, vocab}, DType::kF32);
    int64_t written = 0;
    for (int64_t begin = 0; begin < n; begin += chunk) {
      const int64_t len = std::min(chunk, n - begin);
      const std::vector<int64_t> rows = rows_in(g, begin, len);
      LONGCTX_ASSIGN_OR_RETURN(
          Tensor out, model.forward(std::span(g.ids).subspan(size_t(begin), size_t(len)), kv, rows, comms));
      if (model.returns_logits()) {
        prefill_rows.slice(0, written, written + static_cast<int64_t>(rows.size())).copy_from(out);
        written += static_cast<int64_t>(rows.size());
      }
    }
    run.shares[size_t(r)] = {kv.num_local_tokens(), kv.num_local_blocks(),
                             kv.cache().shape().bytes_per_block()};
    if (model.returns_logits()) split_prefill(prefill_rows, p, t, steps, vocab);
    for (int64_t s = 0;; ++s) {
      float next = model.returns_logits()
                       ? static_cast<float>(cpu::argmax(t.step_logits.data<float>() + s * vocab, vocab))
                       : 0;
      comms.world->broadcast(&next, 1, root);
      t.tokens.push_back(static_cast<int32_t>(next));
      if (s + 1 == steps) break;
      const int32_t id[1] = {t.tokens.back()};
      const int64_t row[1] = {0};
      LONGCTX_ASSIGN_OR_RETURN(Tensor out, model.forward(id, kv, row, comms));
      if (model.returns_logits()) t.step_logits.slice(0, s + 1, s + 2).copy_from(out);
    }
    return Status::ok();
  });
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  run.trace = traces[size_t(root)];
  for (int r = 0; r < world_size; ++r) {
    const Trace& t = traces[size_t(r)];
    EXPECT_EQ(t.tokens, run.trace.tokens) << "rank " << r;
    if (layout->coords(r).pp != pc.pp - 1) continue;
    EXPECT_TRUE(bitwise_equal(t.prompt_logits, run.trace.prompt_logits))
        << "rank " << r << " differs from the root";
    EXPECT_TRUE(bitwise_equal(t.step_logits, run.trace.step_logits))
        << "rank " << r << " differs from the root";
  }
  return run;
}

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

void expect_matches_reference(const Model& m, const std::string& name, const ParallelConfig& pc,
                              const Golden& g, int64_t chunk = 0) {
  auto layout = ParallelLayout::create(pc, m.dims());
  ASSERT_TRUE(layout.is_ok()) << layout.status().to_string();
  const std::string what = name + " [" + layout->to_string() + "] prompt of " + std::to_string(g.ids.size()) +
                           (chunk ? " in chunks of " + std::to_string(chunk) : "");
  const ShardedRun run = run_sharded(m, pc, g, chunk);
  const Trace& ref = m.reference.at(g.ids.size());
  EXPECT_LE(relative_error(run.trace.prompt_logits, ref.prompt_logits), kTolerance) << what;
  EXPECT_LE(relative_error(run.trace.step_logits, ref.step_logits), kTolerance) << what;
  EXPECT_EQ(run.trace.tokens, g.greedy) << what << ": transformers greedy tokens";
}

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

LayoutModelDims dims_of(const ModelConfig& cfg) { return ShardedDenseModel::layout_dims(cfg); }

// The table's layouts that apply to a fixture: valid for its head counts (tp4 dcp4 needs
// one kv head, i.e. MLA; Helix's TPA ≤ H leaves MLA tpa 1).
std::vector<LayoutCase> layouts_for(const std::string& name) {
  const ModelConfig cfg = load_model_config(kHf + name).value();
  std::vector<LayoutCase> out;
  for (const LayoutCase& c : layout_table())
    if (ParallelLayout::validate(c.layout.config(), dims_of(cfg)).is_ok()) out.push_back(c);
  return out;
}

std::string layout_test_name(const ::testing::TestParamInfo<LayoutCase>& p) { return p.param.label; }

class MixtralLayoutTest : public ::testing::TestWithParam<LayoutCase> {};
class Qwen3MoeLayoutTest : public ::testing::TestWithParam<LayoutCase> {};
class DeepseekMlaLayoutTest : public ::testing::TestWithParam<LayoutCase> {};

void check_layout(const std::string& name, const LayoutCase& lc) {
  const Model& m = fixture(name);
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

const Golden& longest(const Model& m) {
  return *std::max_element(m.goldens.begin(), m.goldens.end(),
                           [](const Golden& a, const Golden& b) { return a.ids.size() < b.ids.size(); });
}

class MoeMlaFixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(MoeMlaFixtureTest, LongPromptUnderExpertParallelism) {
  const Model& m = fixture(GetParam());
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
  const Model& m = fixture(GetParam());
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
  const Model& m = fixture("deepseek_v3_mla");
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
    const Model& m = fixture(name);
    const Golden* a = nullptr;
    const Golden* b = nullptr;
    for (const Golden& g : m.goldens) {
      if (g.ids.size() == 33) a = &g;
      if (g.ids.size() == 300) b = &g;
    }
    ASSERT_TRUE(a && b);
    const Trace& ra = m.reference.at(a->ids.size());
    const Trace& rb = m.reference.at(b->ids.size());
    const ParallelConfig pc = m.cfg.is_mla()
                                  ? Layout{.tp = 2, .ep = 4, .dcp = 2, .kvp = 2, .kvp_shard = 128}.config()
                                  : Layout{.tp = 2, .ep = 4, .kvp = 2, .kvp_shard = 128}.config();
    auto layout = ParallelLayout::create(pc, m.dims()).value();
    HostWorld world(layout.world_size());
    std::vector<Tensor> got(static_cast<size_t>(layout.world_size()));
    const Status st = run_on_ranks(world, [&](int r) -> Status {
      LONGCTX_ASSIGN_OR_RETURN(ShardedDenseModel model,
                               ShardedDenseModel::shard(m.cfg, m.weights, layout, r));
      RankCommunicators comms = RankCommunicators::host(world, layout, r);
      ShardedSequenceKV kva = model.new_kv(64), kvb = model.new_kv(320);
      const std::vector<int64_t> none;
      LONGCTX_RETURN_IF_ERROR(model.forward(b->ids, kvb, none, comms));
      const int32_t next_b[1] = {b->greedy[0]};
      std::vector<ShardedStep> steps(2);
      steps[0] = {a->ids, &kva, {static_cast<int64_t>(a->ids.size()) - 1}};
      steps[1] = {next_b, &kvb, {0}};
      LONGCTX_ASSIGN_OR_RETURN(got[size_t(r)], model.forward(steps, comms));
      return Status::ok();
    });
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    EXPECT_LE(relative_error(got[0].slice(0, 0, 1).clone(), ra.step_logits.slice(0, 0, 1).clone()),
              kTolerance)
        << name;
    EXPECT_LE(relative_error(got[0].slice(0, 1, 2).clone(), rb.step_logits.slice(0, 1, 2).clone()),
              kTolerance)
        << name;
    EXPECT_EQ(cpu::argmax(got[0].data<float>(), m.cfg.vocab_size), a->greedy[0]) << name;
  }
}

TEST(ShardedMoeDeterminism, SameExpertParallelLayoutTwiceIsBitwiseIdentical) {
  const Model& m = fixture("qwen3_moe");
  const Golden& g = m.goldens[2];
  const ParallelConfig pc = Layout{.tp = 2, .ep = 4, .kvp = 2, .kvp_shard = 16}.config();
  const ShardedRun a = run_sharded(m, pc, g), b = run_sharded(m, pc, g);
  EXPECT_TRUE(bitwise_equal(a.trace.prompt_logits, b.trace.prompt_logits));
  EXPECT_TRUE(bitwise_equal(a.trace.step_logits, b.trace.step_logits));
}

// EP groups: ep consecutive ranks of a stage; experts split contiguously over them.
TEST(ShardedMoeLayout, EpGroupsAreRunsOfConsecutiveRanksInsideAStage) {
  const Model& m = fixture("qwen3_moe");  // 8 experts
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
  const Model& m = fixture("qwen3_moe");  // 8 experts
  ParallelConfig pc = Layout{.tp = 2, .ep = 2, .kvp = 3, .kvp_shard = 16}.config();
  pc.ep = 3;  // divides tp·kvp = 6 but not 8 experts
  const Status st = ParallelLayout::validate(pc, m.dims());
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("--ep 3 must divide the model's 8 routed experts"), std::string::npos)
      << st.message();
}

TEST(ShardedMoeErrors, EpMustDivideTheRanksOfAStage) {
  const Model& m = fixture("mixtral_moe");
  const Status st = ParallelLayout::validate(Layout{.tp = 2, .ep = 4}.config(), m.dims());
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("--ep 4 must divide the 2 ranks of a pipeline stage"), std::string::npos)
      << st.message();
  const Status zero = ParallelLayout::validate(Layout{.ep = 0}.config(), m.dims());
  ASSERT_FALSE(zero.is_ok());
  EXPECT_NE(zero.message().find("--ep 0 must be at least 1"), std::string::npos) << zero.message();
}

TEST(ShardedMoeErrors, EpOnADenseModelIsRefused) {
  const Model& m = fixture("deepseek_v3_mla");
  // A dense Llama checkpoint's config with the EP layout.
  ModelConfig dense = load_model_config(kHf + "llama_gqa").value();
  auto ckpt = Checkpoint::open(kHf + "llama_gqa");
  DenseWeights w = load_dense_weights(ckpt.value(), dense, std::nullopt).value();
  auto layout = ParallelLayout::create(Layout{.tp = 2, .ep = 2}.config(),
                                       {dense.num_heads, dense.num_kv_heads, dense.num_layers})
                    .value();
  auto model = ShardedDenseModel::shard(dense, w, layout, 0);
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
  const Model& m = fixture("qwen3_moe");
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
