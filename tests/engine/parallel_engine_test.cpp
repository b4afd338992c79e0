// The engine under parallel layouts on CPU ranks: ten concurrent mixed requests (the
// transformers fixture prompts up to 2100 tokens plus random ones) give the greedy
// tokens of transformers and of the single-rank engine; each rank holds ~1/(dcp·cp·kvp)
// of a long request's KV; abort, preemption and per-rank budget pressure free the
// ranks' caches.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>

#include "engine/llm_engine.h"
#include "support/engine_harness.h"

namespace longctx {
namespace {

using namespace testing_support;

// Every request ended by length, except `aborted`.
void expect_ended_by_length(const std::map<RequestId, std::string>& reasons, RequestId aborted = -1) {
  for (const auto& [id, reason] : reasons)
    EXPECT_EQ(reason, id == aborted ? "abort" : "length") << "request " << id;
}

std::map<RequestId, std::vector<int32_t>> run_all_by_length(LLMEngine& e) {
  std::map<RequestId, std::string> reasons;
  auto out = run_all(e, &reasons);
  expect_ended_by_length(reasons);
  return out;
}

// The four golden prompts (5, 33, 300, 2100 tokens) and six random ones up to 1500.
Workload parallel_workload(const std::string& name = "llama_gqa") {
  return mixed_workload(name, {.count = 6, .max_len = 1500, .max_tokens = 10, .seed = 11});
}

const DenseModel& model(const std::string& name = "llama_gqa") {
  static std::map<std::string, std::unique_ptr<DenseModel>> models;
  auto& m = models[name];
  if (!m) m = std::make_unique<DenseModel>(DenseModel::load(hf_dir(name)).value());
  return *m;
}

EngineConfig base_config() {
  EngineConfig cfg;
  cfg.scheduler.max_num_batched_tokens = 512;  // the long prompts take several steps
  cfg.scheduler.max_num_seqs = 16;
  cfg.num_kv_blocks = 4096;
  cfg.threads_per_rank = 1;
  return cfg;
}

// The single-rank engine's tokens for the workload (the reference for the random prompts).
const std::vector<std::vector<int32_t>>& single_rank_tokens(const std::string& name = "llama_gqa") {
  static std::map<std::string, std::vector<std::vector<int32_t>>> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return it->second;
  Workload w = parallel_workload(name);
  auto e = LLMEngine::create(model(name), nullptr, base_config()).value();
  const std::vector<RequestId> ids = add_requests(*e, w.requests).value();
  auto got = run_all_by_length(*e);
  std::vector<std::vector<int32_t>> out;
  for (RequestId id : ids) out.push_back(got[id]);
  return cache[name] = std::move(out);
}

struct LayoutCase {
  std::string name;
  ParallelConfig pc;
  int64_t spp = 0;
  std::string model = "llama_gqa";
};

std::ostream& operator<<(std::ostream& os, const LayoutCase& c) { return os << c.name; }

LayoutCase layout(std::string name, int tp, int dcp, int cp, int kvp, int pp, int64_t shard = 0,
                  int64_t spp = 0) {
  LayoutCase c;
  c.name = std::move(name);
  c.pc.tp = tp;
  c.pc.dcp = dcp;
  c.pc.cp = cp;
  c.pc.kvp = kvp;
  c.pc.pp = pp;
  c.pc.kvp_shard_tokens = shard;
  c.spp = spp;
  return c;
}

class ParallelEngineTest : public ::testing::TestWithParam<LayoutCase> {
 protected:
  EngineConfig config() const {
    EngineConfig cfg = base_config();
    cfg.parallel = GetParam().pc;
    cfg.spp_chunk_tokens = GetParam().spp;
    return cfg;
  }
  int64_t token_share() const {
    const ParallelConfig& pc = GetParam().pc;
    return int64_t{pc.dcp} * pc.cp * pc.kvp;
  }
};

TEST_P(ParallelEngineTest, ConcurrentMixedRequestsMatchTransformersAndOneRank) {
  Workload w = parallel_workload();
  const auto& reference = single_rank_tokens();
  auto e = LLMEngine::create(model(), nullptr, config());
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  ASSERT_NE((*e)->parallel_runner(), nullptr);
  const std::vector<RequestId> ids = add_requests(**e, w.requests).value();
  auto got = run_all_by_length(**e);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!w.golden[i].empty()) {
      EXPECT_EQ(got[ids[i]], w.golden[i])
          << "golden prompt " << i << " of " << w.requests[i].prompt_token_ids.size() << " tokens";
    }
    EXPECT_EQ(got[ids[i]], reference[i]) << "request " << i << " of " << w.requests[i].prompt_token_ids.size()
                                         << " tokens vs the single-rank engine";
  }
  const auto m = (*e)->metrics().snapshot();
  EXPECT_EQ(m.requests_finished, static_cast<int64_t>(ids.size()));
  EXPECT_EQ((*e)->parallel_runner()->num_sequences(), 0);  // every rank's caches released
  ASSERT_EQ(m.kv_blocks_per_rank.size(), static_cast<size_t>((*e)->layout().world_size()));
  for (int64_t b : m.kv_blocks_per_rank) EXPECT_EQ(b, 0);
}

// Each rank's share of one long request: within one block of 1/(dcp·cp·kvp) of the
// single-rank block count (TP and PP split heads and layers, not tokens).
TEST_P(ParallelEngineTest, EachRankHoldsItsShareOfALongRequest) {
  const Golden g = load_goldens("llama_gqa").back();
  const int64_t p = static_cast<int64_t>(g.ids.size());
  ASSERT_EQ(p, 2100);
  EngineConfig cfg = config();
  if (cfg.parallel.kvp > 1)
    cfg.parallel.kvp_shard_tokens = (p / cfg.parallel.kvp + 15) / 16 * 16;  // even shards
  auto e = LLMEngine::create(model(), nullptr, cfg).value();
  const RequestId id = e->add_request(greedy_request(g.ids, 4)).value();
  std::vector<int32_t> first;
  while (first.empty() && e->has_unfinished())
    for (const RequestOutput& o : e->step()) first = o.new_token_ids;
  ASSERT_FALSE(first.empty());
  const std::vector<int64_t> blocks = e->parallel_runner()->request_blocks_per_rank(id);
  ASSERT_EQ(blocks.size(), static_cast<size_t>(e->layout().world_size()));
  const double single = static_cast<double>((p + 15) / 16);
  for (size_t r = 0; r < blocks.size(); ++r)
    EXPECT_NEAR(static_cast<double>(blocks[r]), single / static_cast<double>(token_share()), 1.0)
        << "rank " << r;
  // The metrics report the same per-rank counts.
  e->step();
  const auto m = e->metrics().snapshot();
  ASSERT_EQ(m.kv_blocks_per_rank.size(), blocks.size());
  for (size_t r = 0; r < blocks.size(); ++r)
    EXPECT_NEAR(double(m.kv_blocks_per_rank[r]), double(blocks[r]), 1.0);
}

TEST_P(ParallelEngineTest, AbortFreesEveryRanksCache) {
  Workload w = parallel_workload();
  auto e = LLMEngine::create(model(), nullptr, config()).value();
  const std::vector<RequestId> ids = add_requests(*e, w.requests).value();
  const RequestId victim = ids[3];  // the 2100-token prompt, mid-prefill after 3 steps of 512 tokens
  std::map<RequestId, std::vector<int32_t>> got;
  std::map<RequestId, std::string> reasons;
  run_steps(*e, got, 3, &reasons);
  ParallelModelRunner& runner = *e->parallel_runner();
  ASSERT_FALSE(runner.request_blocks_per_rank(victim).empty());
  e->abort(victim);
  EXPECT_TRUE(runner.request_blocks_per_rank(victim).empty());
  run_steps(*e, got, 100000, &reasons);
  expect_ended_by_length(reasons, victim);
  EXPECT_FALSE(e->has_unfinished());
  EXPECT_EQ(runner.num_sequences(), 0);
  for (int64_t b : runner.blocks_per_rank()) EXPECT_EQ(b, 0);
  EXPECT_TRUE(got[victim].empty());
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(got[ids[i]], w.golden[i]) << "golden prompt " << i;  // undisturbed
}

INSTANTIATE_TEST_SUITE_P(Layouts, ParallelEngineTest,
                         ::testing::Values(layout("tp2", 2, 1, 1, 1, 1), layout("tp4_dcp2", 4, 2, 1, 1, 1),
                                           layout("cp2", 1, 1, 2, 1, 1), layout("kvp2", 1, 1, 1, 2, 1, 256),
                                           layout("pp2", 1, 1, 1, 1, 2),
                                           layout("pp2_spp", 1, 1, 1, 1, 2, 0, 128),
                                           layout("tp2_cp2", 2, 1, 2, 1, 1),
                                           layout("cp2_kvp2", 1, 1, 2, 2, 1, 512),
                                           layout("tp2_pp2_spp", 2, 1, 1, 1, 2, 0, 96)),
                         [](const ::testing::TestParamInfo<LayoutCase>& param) { return param.param.name; });

// A per-rank budget small enough that the long prompts cannot all run at once: the
// scheduler preempts (and, under KVP, the engine sends back what overflows the first
// group); every token still matches, and every rank's cache is released.
class ParallelPreemptionTest : public ParallelEngineTest {};

TEST_P(ParallelPreemptionTest, TightPerRankBudgetPreemptsWithIdenticalOutput) {
  Workload w = parallel_workload();
  const auto& reference = single_rank_tokens();
  EngineConfig cfg = config();
  cfg.scheduler.max_num_batched_tokens = 256;
  cfg.num_kv_blocks = 90;  // per rank: one 2100-token request's share and a little more
  // Admission by the first chunk, so the long prompts do preempt each other (with
  // whole-prompt reservation they would wait their turn).
  cfg.scheduler.reserve_prompt_kv = false;
  auto e = LLMEngine::create(model(), nullptr, cfg);
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  auto added = add_requests(**e, w.requests);
  ASSERT_TRUE(added.is_ok()) << added.status().to_string();
  const std::vector<RequestId>& ids = *added;
  auto got = run_all_by_length(**e);
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(got[ids[i]], reference[i]) << "request " << i;
  const auto m = (*e)->metrics().snapshot();
  EXPECT_GT(m.num_preemptions, 0);
  EXPECT_EQ(m.requests_finished, static_cast<int64_t>(ids.size()));
  EXPECT_EQ((*e)->parallel_runner()->num_sequences(), 0);
}

INSTANTIATE_TEST_SUITE_P(Layouts, ParallelPreemptionTest,
                         ::testing::Values(layout("tp4_dcp2", 4, 2, 1, 1, 1), layout("cp2", 1, 1, 2, 1, 1),
                                           layout("kvp2", 1, 1, 1, 2, 1, 1024)),
                         [](const ::testing::TestParamInfo<LayoutCase>& param) { return param.param.name; });

// The other fixture architectures under layouts: MoE with expert parallelism, MLA with
// DCP of its one latent head, Helix, and Qwen's biases / q-k norms with CP and KVP.
class ModelLayoutTest : public ::testing::TestWithParam<LayoutCase> {};

TEST_P(ModelLayoutTest, ConcurrentMixedRequestsMatchTransformersAndOneRank) {
  const LayoutCase& c = GetParam();
  Workload w = parallel_workload(c.model);
  const auto& reference = single_rank_tokens(c.model);
  EngineConfig cfg = base_config();
  cfg.parallel = c.pc;
  cfg.spp_chunk_tokens = c.spp;
  auto e = LLMEngine::create(model(c.model), nullptr, cfg);
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  const std::vector<RequestId> ids = add_requests(**e, w.requests).value();
  auto got = run_all_by_length(**e);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!w.golden[i].empty()) {
      EXPECT_EQ(got[ids[i]], w.golden[i]) << "golden prompt " << i;
    }
    EXPECT_EQ(got[ids[i]], reference[i]) << "request " << i << " vs the single-rank engine";
  }
  EXPECT_EQ((*e)->parallel_runner()->num_sequences(), 0);
}

LayoutCase on(std::string model_name, LayoutCase c, int ep = 1, bool helix = false) {
  c.model = model_name;
  c.name = model_name + "_" + c.name;
  c.pc.ep = ep;
  c.pc.helix = helix;
  return c;
}

INSTANTIATE_TEST_SUITE_P(
    Models, ModelLayoutTest,
    ::testing::Values(on("mixtral_moe", layout("tp2_ep2", 2, 1, 1, 1, 1), 2),
                      on("qwen3_moe", layout("cp2_ep2_pp2_spp", 1, 1, 2, 1, 2, 0, 128), 2),
                      on("deepseek_v3_mla", layout("tp2_dcp2", 2, 2, 1, 1, 1)),
                      on("deepseek_v3_mla", layout("kvp2_helix", 1, 1, 1, 2, 1, 512), 1, true),
                      on("qwen2_bias_tied", layout("helix_kvp2_tp2", 2, 1, 1, 2, 1, 512), 1, true),
                      on("qwen3_qknorm", layout("cp2_kvp2", 1, 1, 2, 2, 1, 256))),
    [](const ::testing::TestParamInfo<LayoutCase>& param) { return param.param.name; });

// A rank failing mid-run: the step's requests end with "abort" (their shares dropped on
// every rank), the engine goes on, and a request added afterwards gets the golden tokens.
TEST(ParallelEngine, ARankFailureAbortsTheStepsRequestsAndTheEngineGoesOn) {
  EngineConfig cfg = base_config();
  cfg.parallel.tp = 2;
  cfg.parallel.pp = 2;
  auto e = LLMEngine::create(model(), nullptr, cfg).value();
  const auto goldens = load_goldens("llama_gqa");
  const RequestId a = e->add_request(greedy_request(goldens[3].ids, 8)).value();  // 2100 tokens: 5 steps
  e->step();
  std::atomic<bool> armed{true};
  e->parallel_runner()->set_observer([&](int rank, int64_t, MicroBatchEvent ev) {
    if (rank == 2 && ev == MicroBatchEvent::kBegin && armed.exchange(false))
      throw std::runtime_error("rank lost");
  });
  std::map<RequestId, std::string> reasons;
  for (const RequestOutput& o : e->step())
    if (o.finished) reasons[o.request_id] = o.finish_reason;
  EXPECT_EQ(reasons[a], "abort");
  EXPECT_FALSE(e->has_unfinished());
  EXPECT_EQ(e->parallel_runner()->num_sequences(), 0);
  EXPECT_EQ(e->metrics().snapshot().requests_aborted, 1);

  const RequestId b = e->add_request(greedy_request(goldens[2].ids, 16)).value();
  auto got = run_all_by_length(*e);
  EXPECT_EQ(got[b], goldens[2].greedy);
}

// Prompt logprobs ask for every position's logits: under SPP each piece returns its rows
// and the runner stitches them back in order. Same values as on one rank.
TEST(ParallelEngine, PromptLogprobsAcrossSppPiecesMatchOneRank) {
  std::vector<int32_t> prompt(700);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>(3 + (i * 37) % 500);
  auto logprobs_of = [&](EngineConfig cfg) {
    auto e = LLMEngine::create(model(), nullptr, cfg).value();
    auto r = greedy_request(prompt, 2);
    r.prompt_logprobs = 1;
    e->add_request(r).value();
    std::optional<std::vector<std::optional<TokenLogprob>>> pl;
    while (e->has_unfinished())
      for (auto& o : e->step())
        if (o.prompt_logprobs) pl = o.prompt_logprobs;
    EXPECT_TRUE(pl.has_value());
    return pl.value_or(std::vector<std::optional<TokenLogprob>>{});
  };
  EngineConfig one = base_config();
  one.scheduler.max_num_batched_tokens = 512;
  EngineConfig spp = one;
  spp.parallel.pp = 2;
  spp.parallel.tp = 2;
  spp.spp_chunk_tokens = 100;  // 512-token chunks in six pieces
  const auto want = logprobs_of(one), got = logprobs_of(spp);
  ASSERT_EQ(want.size(), prompt.size());
  ASSERT_EQ(got.size(), prompt.size());
  for (size_t i = 1; i < prompt.size(); ++i) {
    ASSERT_TRUE(got[i].has_value() && want[i].has_value()) << i;
    EXPECT_EQ(got[i]->token, prompt[i]);
    EXPECT_NEAR(got[i]->logprob, want[i]->logprob, 1e-4) << "position " << i;
    ASSERT_EQ(got[i]->top.size(), 1u);
    ASSERT_EQ(want[i]->top.size(), 1u);
    EXPECT_EQ(got[i]->top[0].first, want[i]->top[0].first) << "position " << i;
    EXPECT_NEAR(got[i]->top[0].second, want[i]->top[0].second, 1e-4) << "position " << i;
  }
}

TEST(ParallelEngine, MetricsNameTheLayout) {
  EngineConfig cfg = base_config();
  cfg.parallel.tp = 2;
  cfg.parallel.cp = 2;
  auto e = LLMEngine::create(model(), nullptr, cfg).value();
  const auto m = e->metrics().snapshot();
  std::map<std::string, int64_t> labels(m.layout.begin(), m.layout.end());
  EXPECT_EQ(labels["tp"], 2);
  EXPECT_EQ(labels["cp"], 2);
  EXPECT_EQ(labels["world"], 4);
  EXPECT_EQ(m.kv_blocks_per_rank, std::vector<int64_t>(4, 0));
  EXPECT_EQ(m.kv_blocks_per_rank_budget, 4095);
  EXPECT_EQ(e->num_kv_blocks(), 2 * 4095 + 1);  // cp 2: sequence blocks for twice a rank's tokens
}

TEST(ParallelEngine, RejectsAnImpossibleLayoutWithTheRule) {
  EngineConfig cfg = base_config();
  cfg.parallel.tp = 2;
  cfg.parallel.dcp = 2;  // 2 kv heads at tp 2: no replica to shard
  auto e = LLMEngine::create(model(), nullptr, cfg);
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.status().message().find("--dcp 2"), std::string::npos) << e.status().message();
}

TEST(ParallelEngine, RejectsARequestNoRankCanHold) {
  EngineConfig cfg = base_config();
  cfg.parallel.kvp = 2;
  cfg.parallel.kvp_shard_tokens = 1024;
  cfg.num_kv_blocks = 50;  // the sequence pool (2·49 blocks) would take 1500 tokens, the first group only 784
  auto e = LLMEngine::create(model(), nullptr, cfg).value();
  EXPECT_EQ(e->num_kv_blocks(), 2 * 49 + 1);
  auto id = e->add_request(greedy_request(std::vector<int32_t>(1500, 7), 4));
  ASSERT_FALSE(id.is_ok());
  EXPECT_NE(id.status().message().find("KV blocks on the most loaded rank"), std::string::npos)
      << id.status().message();
}

}  // namespace
}  // namespace longctx
