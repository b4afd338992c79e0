// The harness of the sharded-model tests (tests/parallel/): a fixture's weights and its
// single-rank DenseModel reference traces, a layout's ranks run as threads of one
// HostWorld prefilling and greedily decoding a golden prompt, and the comparison of the
// root rank's logits against the reference (DESIGN.md §3: fp32, ≤ 1e-4 relative).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model/dense_model.h"
#include "model/dense_weights.h"
#include "model/safetensors.h"
#include "model/sharded_dense_model.h"
#include "ops/cpu/sampling.h"
#include "parallel/host_communicator.h"
#include "support/fixtures.h"

namespace longctx::testing_support {

constexpr double kShardedTolerance = 1e-4;  // fp32: max|Δ| / max|ref|

// Logits of one generation: at the golden positions of the prompt, then at every step
// (row 0: the last prompt token; row i: after feeding greedy token i − 1).
struct Trace {
  Tensor prompt_logits;  // [P, vocab]
  Tensor step_logits;    // [N, vocab]
  std::vector<int32_t> tokens;
};

inline bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// Rows of a prompt chunk [begin, begin + len) whose logits a trace wants: the golden
// positions, then the last prompt token.
inline std::vector<int64_t> rows_in(const Golden& g, int64_t begin, int64_t len) {
  std::vector<int64_t> rows;
  for (int64_t p : g.logit_pos)
    if (p >= begin && p < begin + len) rows.push_back(p - begin);
  const int64_t last = static_cast<int64_t>(g.ids.size()) - 1;
  if (last >= begin && last < begin + len) rows.push_back(last - begin);
  return rows;
}

// A trace from [P + 1 or more rows] of prefill logits: the golden rows, then the last.
inline void split_prefill(const Tensor& rows, int64_t p, Trace& t, int64_t steps, int64_t vocab) {
  t.prompt_logits = rows.slice(0, 0, p).clone();
  t.step_logits = Tensor::empty({steps, vocab}, DType::kF32);
  t.step_logits.slice(0, 0, 1).copy_from(rows.slice(0, p, p + 1));
}

// A fixture's config and full weights (what ShardedDenseModel::shard takes).
struct ModelWeights {
  ModelConfig cfg;
  DenseWeights weights;

  LayoutModelDims dims() const { return ShardedDenseModel::layout_dims(cfg); }
};

inline ModelWeights load_model_weights(const std::string& name) {
  ModelWeights m;
  m.cfg = load_model_config(hf_dir(name)).value();
  auto ckpt = Checkpoint::open(hf_dir(name));
  m.weights = load_dense_weights(ckpt.value(), m.cfg, std::nullopt).value();
  return m;
}

// The weights, the goldens and the single-rank DenseModel's trace of each golden.
struct ShardedFixture : ModelWeights {
  std::unique_ptr<DenseModel> dense;
  std::vector<Golden> goldens;
  std::map<size_t, Trace> reference;  // single-rank DenseModel, by prompt length
};

inline Trace reference_trace(const DenseModel& m, const Golden& g) {
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

// Loaded once per test program (the references take a while on the long prompt).
inline const ShardedFixture& sharded_fixture(const std::string& name) {
  static std::map<std::string, std::unique_ptr<ShardedFixture>> cache;
  auto& slot = cache[name];
  if (slot) return *slot;
  slot = std::make_unique<ShardedFixture>();
  ShardedFixture& m = *slot;
  static_cast<ModelWeights&>(m) = load_model_weights(name);
  m.dense = std::make_unique<DenseModel>(DenseModel::load(hf_dir(name)).value());
  for (Golden& g : load_goldens(name)) {
    m.reference[g.ids.size()] = reference_trace(*m.dense, g);
    m.goldens.push_back(std::move(g));
  }
  return m;
}

inline const Golden& longest(const ShardedFixture& m) {
  return *std::max_element(m.goldens.begin(), m.goldens.end(),
                           [](const Golden& a, const Golden& b) { return a.ids.size() < b.ids.size(); });
}

// The golden prompt of `length` tokens, or null.
inline const Golden* golden_of_length(const ShardedFixture& m, size_t length) {
  const Golden* found = nullptr;
  for (const Golden& g : m.goldens)
    if (g.ids.size() == length) found = &g;
  return found;
}

struct RankShare {
  int64_t tokens = 0, blocks = 0, cache_bytes = 0;  // cache_bytes: per block
};

struct ShardedRun {
  Trace trace;                    // from the root rank (tp 0 of the last stage)
  std::vector<RankShare> shares;  // per rank, after the prefill
};

// Prefills g (in chunks of `chunk` tokens, 0 = whole) and decodes greedily through the
// sharded forward on every rank of the layout; checks that all logit ranks agree bitwise.
inline ShardedRun run_sharded(const ModelWeights& m, const ParallelConfig& pc, const Golden& g,
                              int64_t chunk = 0) {
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

// The sharded run of g under pc gives the single-rank logits and transformers' greedy tokens.
inline void expect_matches_reference(const ShardedFixture& m, const std::string& name,
                                     const ParallelConfig& pc, const Golden& g, int64_t chunk = 0) {
  auto layout = ParallelLayout::create(pc, m.dims());
  ASSERT_TRUE(layout.is_ok()) << layout.status().to_string();
  const std::string what = name + " [" + layout->to_string() + "] prompt of " + std::to_string(g.ids.size()) +
                           (chunk ? " in chunks of " + std::to_string(chunk) : "");
  const ShardedRun run = run_sharded(m, pc, g, chunk);
  const Trace& ref = m.reference.at(g.ids.size());
  EXPECT_LE(relative_error(run.trace.prompt_logits, ref.prompt_logits), kShardedTolerance) << what;
  EXPECT_LE(relative_error(run.trace.step_logits, ref.step_logits), kShardedTolerance) << what;
  EXPECT_EQ(run.trace.tokens, g.greedy) << what << ": transformers greedy tokens";
}

// Two requests in one step under pc: a's whole prompt prefilled beside b's first decode
// (b prefilled the step before). `got` gets each rank's logits [2, vocab]: a's last
// prompt token, then b's first decoded token.
inline Status prefill_beside_decode(const ModelWeights& m, const ParallelConfig& pc, const Golden& a,
                                    const Golden& b, std::vector<Tensor>& got) {
  auto layout = ParallelLayout::create(pc, m.dims()).value();
  HostWorld world(layout.world_size());
  got.assign(static_cast<size_t>(layout.world_size()), Tensor());
  return run_on_ranks(world, [&](int r) -> Status {
    LONGCTX_ASSIGN_OR_RETURN(ShardedDenseModel model, ShardedDenseModel::shard(m.cfg, m.weights, layout, r));
    RankCommunicators comms = RankCommunicators::host(world, layout, r);
    ShardedSequenceKV kva = model.new_kv(64), kvb = model.new_kv(320);
    const std::vector<int64_t> none;
    LONGCTX_RETURN_IF_ERROR(model.forward(b.ids, kvb, none, comms));
    const int32_t next_b[1] = {b.greedy[0]};
    std::vector<ShardedStep> steps(2);
    steps[0] = {a.ids, &kva, {static_cast<int64_t>(a.ids.size()) - 1}};
    steps[1] = {next_b, &kvb, {0}};
    LONGCTX_ASSIGN_OR_RETURN(got[size_t(r)], model.forward(steps, comms));
    return Status::ok();
  });
}

}  // namespace longctx::testing_support
