// The correctness rule of DESIGN.md §3 on CPU ranks: every layout produces the logits
// of the single-rank DenseModel (fp32, ≤ 1e-4 relative) and the transformers greedy
// tokens, decoding through the sharded forward; and each rank holds its share of the KV.
#include "model/sharded_dense_model.h"

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
#include "ops/cpu/sampling.h"
#include "parallel/host_communicator.h"
#include "support/fixtures.h"

namespace longctx {
namespace {

const std::string kHf = std::string(LONGCTX_TEST_DATA_DIR) + "/hf/";
constexpr double kTolerance = 1e-4;  // fp32: max|Δ| / max|ref|

using testing_support::Golden;

// Logits of one generation: at the golden positions of the prompt, then at every step
// (row 0: the last prompt token; row i: after feeding greedy token i − 1).
struct Trace {
  Tensor prompt_logits;  // [P, vocab]
  Tensor step_logits;    // [N, vocab]
  std::vector<int32_t> tokens;
};

using testing_support::relative_error;

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// Rows of a prompt chunk [begin, begin + len) whose logits a trace wants.
std::vector<int64_t> rows_in(const Golden& g, int64_t begin, int64_t len) {
  std::vector<int64_t> rows;
  for (int64_t p : g.logit_pos)
    if (p >= begin && p < begin + len) rows.push_back(p - begin);
  const int64_t last = static_cast<int64_t>(g.ids.size()) - 1;
  if (last >= begin && last < begin + len) rows.push_back(last - begin);
  return rows;
}

// A trace from [P + 1 or more rows] of prefill logits: the golden rows, then the last.
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
  std::map<size_t, Trace> reference;  // by prompt length

  LayoutModelDims dims() const { return {cfg.num_heads, cfg.num_kv_heads, cfg.num_layers}; }
};

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
  int64_t tokens = 0, blocks = 0;
};

struct ShardedRun {
  Trace trace;                    // from the root rank (tp 0 of the last stage)
  std::vector<RankShare> shares;  // per rank, after the prefill
};

// Prefills g (in chunks of `chunk` tokens, 0 = whole) and decodes greedily through the
// sharded forward on every rank of the layout; checks that all logit ranks agree bitwise.
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
    run.shares[size_t(r)] = {kv.num_local_tokens(), kv.num_local_blocks()};
    if (model.returns_logits()) split_prefill(prefill_rows, p, t, steps, vocab);
    for (int64_t s = 0;; ++s) {
      // The last stage picks the token; every rank needs it for the next step.
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

void expect_matches_reference(const Model& m, const std::string& name, const ParallelConfig& pc,
                              const Golden& g, int64_t chunk = 0) {
  const std::string what = name + " [" + ParallelLayout::create(pc, m.dims())->to_string() + "] prompt of " +
                           std::to_string(g.ids.size()) +
                           (chunk ? " in chunks of " + std::to_string(chunk) : "");
  const ShardedRun run = run_sharded(m, pc, g, chunk);
  const Trace& ref = m.reference.at(g.ids.size());
  EXPECT_LE(relative_error(run.trace.prompt_logits, ref.prompt_logits), kTolerance) << what;
  EXPECT_LE(relative_error(run.trace.step_logits, ref.step_logits), kTolerance) << what;
  EXPECT_EQ(run.trace.tokens, g.greedy) << what << ": transformers greedy tokens";
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
  const Model& m = fixture(name);
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

const Golden& longest(const Model& m) {
  return *std::max_element(m.goldens.begin(), m.goldens.end(),
                           [](const Golden& a, const Golden& b) { return a.ids.size() < b.ids.size(); });
}

TEST_P(ShardedFixtureTest, LongPromptOnRepresentativeLayouts) {
  const Model& m = fixture(GetParam());
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
  const Model& m = fixture(GetParam());
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
  const Model& m = fixture("llama_gqa");
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
  const Model& m = fixture("qwen3_qknorm");
  const Golden* a = nullptr;
  const Golden* b = nullptr;
  for (const Golden& g : m.goldens) {
    if (g.ids.size() == 33) a = &g;
    if (g.ids.size() == 300) b = &g;
  }
  ASSERT_TRUE(a && b);
  const Trace& ra = m.reference.at(a->ids.size());
  const Trace& rb = m.reference.at(b->ids.size());
  ParallelConfig pc = layout_of(4, 2, 2, 1, 128);
  auto layout = ParallelLayout::create(pc, m.dims()).value();
  HostWorld world(layout.world_size());
  std::vector<Tensor> got(static_cast<size_t>(layout.world_size()));
  const Status st = run_on_ranks(world, [&](int r) -> Status {
    LONGCTX_ASSIGN_OR_RETURN(ShardedDenseModel model, ShardedDenseModel::shard(m.cfg, m.weights, layout, r));
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
  const int64_t vocab = m.cfg.vocab_size;
  EXPECT_LE(relative_error(got[0].slice(0, 0, 1).clone(), ra.step_logits.slice(0, 0, 1).clone()), kTolerance);
  EXPECT_LE(relative_error(got[0].slice(0, 1, 2).clone(), rb.step_logits.slice(0, 1, 2).clone()), kTolerance);
  EXPECT_EQ(got[0].size(1), vocab);
}

// The 2100-token prompt batched with other requests: prefilled beside a short prompt,
// then decoded beside that prompt's decode and a third request's whole prefill. Under
// Helix the short requests' tokens all sit on KVP rank 0 (shard 704/1056 tokens), so the
// other KVP ranks merge an empty shard for them.
TEST(ShardedBatch, LongPromptBatchedWithOtherRequests) {
  const Model& m = fixture("qwen2_bias_tied");
  const Golden& lg = longest(m);
  const Golden* a = nullptr;
  const Golden* b = nullptr;
  for (const Golden& g : m.goldens) {
    if (g.ids.size() == 33) a = &g;
    if (g.ids.size() == 300) b = &g;
  }
  ASSERT_TRUE(a && b);
  ASSERT_GE(lg.ids.size(), 2000u);
  const int64_t vocab = m.cfg.vocab_size;
  const auto last = [](const Golden& g) { return static_cast<int64_t>(g.ids.size()) - 1; };
  for (const ParallelConfig& pc : {helix(layout_of(2, 1, 2, 1, 1056)), helix(layout_of(1, 1, 3, 1, 704)),
                                   layout_of(4, 2, 2, 1, 1056)}) {
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
    EXPECT_LE(relative_error(row(first[0], 0), row(rl.step_logits, 0)), kTolerance) << what;
    EXPECT_LE(relative_error(row(first[0], 1), row(ra.step_logits, 0)), kTolerance) << what;
    EXPECT_LE(relative_error(row(second[0], 0), row(ra.step_logits, 1)), kTolerance) << what;
    EXPECT_LE(relative_error(row(second[0], 1), row(rl.step_logits, 1)), kTolerance) << what;
    EXPECT_LE(relative_error(row(second[0], 2), row(rb.step_logits, 0)), kTolerance) << what;
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
  const Model& m = fixture("llama_gqa");
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
  const Model& m = fixture("llama_gqa");
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
  const Model& m = fixture("llama_gqa");
  auto other = ParallelLayout::create(layout_of(2), {8, 2, 2}).value();
  auto model = ShardedDenseModel::shard(m.cfg, m.weights, other, 0);
  ASSERT_FALSE(model.is_ok());
  EXPECT_EQ(model.status().code(), StatusCode::kInvalidArgument);
}

TEST(ShardedDeterminism, SameLayoutTwiceIsBitwiseIdentical) {
  const Model& m = fixture("qwen2_bias_tied");
  const Golden& g = m.goldens[1];
  const ParallelConfig pc = layout_of(4, 2, 2, 1, 16);
  const ShardedRun a = run_sharded(m, pc, g), b = run_sharded(m, pc, g);
  EXPECT_TRUE(bitwise_equal(a.trace.prompt_logits, b.trace.prompt_logits));
  EXPECT_TRUE(bitwise_equal(a.trace.step_logits, b.trace.step_logits));
}

}  // namespace
}  // namespace longctx
