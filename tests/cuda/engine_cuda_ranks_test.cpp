// The engine on GPU ranks (`--device cuda --tp/--pp/--dcp/--kvp/--cp`): LLMEngine driving
// CudaParallelRunner, every rank a worker thread, all ranks sharing the machine's GPUs (rank r
// on GPU r % count; on a one-GPU machine all on GPU 0, device-staged communicators).
//
// Against the single-GPU engine (CudaModelRunner, eager) on the same bf16 weights and the same
// pool, so both engines schedule the same plans: the llama_gqa golden prompts (5, 33, 300 and
// 2100 tokens) together in 97-token steps (chunked prefill: chunks start mid-block), then 8
// decode steps each, then the 300-token prompt again (served from the prefix cache). Greedy
// tokens must equal the single-GPU engine's, except where the two runs' tokens first part at
// a near-tie of the single-GPU logits — the policy of sharded_model_test.cpp: within
// 2 · bound · max|logit| of each other, bound the layout's logit band (1e-2 for TP/PP, 3e-2 for
// the attention exchanges of DCP/KVP/CP); after a flip the request's continuations differ and
// are not compared. pp2 alone is bitwise the single rank (sharded_model_test): no flip allowed.
// Also: abort mid-prefill frees every block; a rank's failure surfaces as "rank r: …" and stops
// the runner without a hang; layouts the GPU model does not run are refused with its message;
// the pool planned over the GPU's memory when none is given.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cuda/fixture_model.h"
#include "engine/llm_engine.h"
#include "exec/cuda_model_runner.h"
#include "exec/cuda_parallel_runner.h"
#include "model/dense_model.h"
#include "model/sharded_dense_model.h"
#include "support/engine_harness.h"
#include "support/fixtures.h"

namespace longctx {
namespace {

using namespace testing_support;

constexpr int64_t kStepTokens = 97;  // not a multiple of the block size: chunks start mid-block
constexpr int64_t kDecodeTokens = 8;
constexpr int64_t kPoolBlocks = 1024;
constexpr size_t kRepeatPrompt = 2;  // the 300-token prompt, run again from the prefix cache
constexpr double kTpBound = 1e-2;
constexpr double kExchangeBound = 3e-2;

DenseModel load_bf16(const std::string& name) {
  ModelLoadOptions o;
  o.dtype = DType::kBF16;
  auto m = DenseModel::load(hf_dir(name), o);
  EXPECT_TRUE(m.is_ok()) << m.status().to_string();
  return std::move(*m);
}

EngineConfig engine_config() {
  EngineConfig cfg;
  cfg.scheduler.max_num_batched_tokens = kStepTokens;
  cfg.scheduler.max_num_seqs = 8;
  cfg.scheduler.max_model_len = 4096;
  return cfg;
}

cuda::CudaModelOptions model_options(const EngineConfig& cfg, int64_t num_kv_blocks) {
  cuda::CudaModelOptions o;
  o.max_num_batched_tokens = cfg.scheduler.max_num_batched_tokens;
  o.max_num_seqs = cfg.scheduler.max_num_seqs;
  o.block_size = cfg.block_size;
  o.max_model_len = cfg.scheduler.max_model_len;
  o.num_kv_blocks = num_kv_blocks;
  o.cuda_graphs = false;  // the reference eager, as the ranks run
  return o;
}

struct LayoutCase {
  std::string name;
  ParallelConfig pc;
  bool exchange = false;  // DCP, KVP or CP: the attention-exchange band
  bool exact = false;     // pp alone: bitwise the single rank
};

ParallelConfig config(int tp, int pp, int dcp = 1, int kvp = 1, int cp = 1, int64_t kvp_shard_tokens = 0) {
  ParallelConfig pc;
  pc.tp = tp, pc.pp = pp, pc.dcp = dcp, pc.kvp = kvp, pc.cp = cp, pc.kvp_shard_tokens = kvp_shard_tokens;
  return pc;
}

std::vector<LayoutCase> layouts() {
  return {
      {"tp2", config(2, 1), false, false},
      {"pp2", config(1, 2), false, true},
      {"tp2xpp2", config(2, 2), false, false},
      // dcp needs tp > the 2 kv heads: tp4 x dcp2 is the most llama_gqa's heads allow.
      {"tp4xdcp2", config(4, 1, 2), true, false},
      {"kvp2", config(1, 1, 1, 2, 1, 48), true, false},
      {"cp2", config(1, 1, 1, 1, 2), true, false},
  };
}

Result<ParallelLayout> make_layout(const DenseModel& m, ParallelConfig pc, int64_t block_size) {
  pc.block_size = block_size;
  return ParallelLayout::create(pc, ShardedDenseModel::layout_dims(m.config()));
}

struct RanksEngine {
  std::unique_ptr<LLMEngine> engine;
  CudaParallelRunner* runner = nullptr;  // owned by the engine
};

// The engine as `--device cuda` with a layout builds it (apps/engine_flags.cpp): the ranks as
// its executor, the engine itself on one rank.
RanksEngine make_ranks_engine(const DenseModel& m, const EngineConfig& cfg, const ParallelConfig& pc,
                              int64_t num_kv_blocks, double utilization = 0.9) {
  auto layout = make_layout(m, pc, cfg.block_size);
  EXPECT_TRUE(layout.is_ok()) << layout.status().to_string();
  if (!layout.is_ok()) return {};
  CudaParallelRunnerOptions ro;
  ro.model = model_options(cfg, num_kv_blocks);
  ro.model.gpu_memory_utilization = utilization;
  auto r = CudaParallelRunner::create(m.config(), m.weights(), *layout, ro);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  if (!r.is_ok()) return {};
  std::printf("[ gpu ] %s\n", (*r)->describe().c_str());
  RanksEngine g;
  g.runner = r->get();
  auto e = LLMEngine::create(m, nullptr, cfg, std::move(*r));
  EXPECT_TRUE(e.is_ok()) << e.status().to_string();
  if (e.is_ok()) g.engine = std::move(*e);
  return g;
}

std::unique_ptr<LLMEngine> make_single_engine(const DenseModel& m, const EngineConfig& cfg) {
  auto r = CudaModelRunner::create(m.config(), m.weights(), model_options(cfg, kPoolBlocks));
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  if (!r.is_ok()) return nullptr;
  auto e = LLMEngine::create(m, nullptr, cfg, std::move(*r));
  EXPECT_TRUE(e.is_ok()) << e.status().to_string();
  if (!e.is_ok()) return nullptr;
  return std::move(*e);
}

// What one engine produced: per request (the golden prompts, then the repeat) its prompt and
// tokens; the repeat's prefix-cache hit.
struct EngineRun {
  std::vector<std::vector<int32_t>> prompts, tokens;
  int64_t repeat_cached = -1;
};

EngineRun run_workload(LLMEngine& e, const std::vector<Golden>& goldens) {
  EngineRun w;
  std::vector<RequestId> ids;
  for (const Golden& g : goldens) {
    w.prompts.push_back(g.ids);
    ids.push_back(e.add_request(greedy_request(g.ids, kDecodeTokens)).value());
  }
  auto got = run_all(e);
  for (RequestId id : ids) w.tokens.push_back(got[id]);
  // The repeat finds the first run's full blocks in the prefix cache.
  const std::vector<int32_t>& again = goldens.at(kRepeatPrompt).ids;
  w.prompts.push_back(again);
  e.add_request(greedy_request(again, kDecodeTokens)).value();
  std::vector<int32_t> toks;
  while (e.has_unfinished())
    for (const RequestOutput& o : e.step()) {
      w.repeat_cached = std::max(w.repeat_cached, o.num_cached_tokens);
      toks.insert(toks.end(), o.new_token_ids.begin(), o.new_token_ids.end());
    }
  w.tokens.push_back(toks);
  return w;
}

// The single-GPU model's logits of the last position of `ids` (one whole-prompt step).
Result<std::vector<float>> last_logits(cuda::CudaDenseModel& m, const std::vector<int32_t>& ids) {
  cuda::test::Sequences seqs;
  ForwardBatch b;
  seqs.schedule(b, seqs.add(), ids, {static_cast<int64_t>(ids.size()) - 1});
  LONGCTX_ASSIGN_OR_RETURN(Tensor logits, m.forward(b));
  return std::vector<float>(logits.data<float>(), logits.data<float>() + logits.numel());
}

// Each request's tokens against the reference's: equal, or parting at a near-tie (see the file
// comment). Returns the number of near-tie flips; anything else is a failure.
int check_tokens(const std::string& what, const EngineRun& got, const EngineRun& ref, double bound, bool exact,
                 cuda::CudaDenseModel& single) {
  int flips = 0;
  EXPECT_EQ(got.tokens.size(), ref.tokens.size()) << what;
  for (size_t i = 0; i < got.tokens.size() && i < ref.tokens.size(); ++i) {
    const std::vector<int32_t>&g = got.tokens[i], &r = ref.tokens[i];
    EXPECT_EQ(g.size(), size_t(kDecodeTokens)) << what << " request " << i;
    EXPECT_EQ(r.size(), size_t(kDecodeTokens)) << what << " request " << i << " (reference)";
    size_t k = 0;
    while (k < g.size() && k < r.size() && g[k] == r[k]) ++k;
    if (k == g.size() && k == r.size()) continue;
    if (exact || k >= g.size() || k >= r.size()) {
      ADD_FAILURE() << what << " request " << i << ": token " << k << " differs from the single-GPU engine's";
      continue;
    }
    std::vector<int32_t> ctx = ref.prompts[i];
    ctx.insert(ctx.end(), r.begin(), r.begin() + static_cast<std::ptrdiff_t>(k));
    auto row = last_logits(single, ctx);
    if (!row.is_ok()) {
      ADD_FAILURE() << what << ": " << row.status().to_string();
      continue;
    }
    double peak = 0;
    for (float v : *row) peak = std::max(peak, std::fabs(double(v)));
    const double gap = std::fabs(double((*row)[size_t(r[k])]) - (*row)[size_t(g[k])]);
    std::printf("[ gpu ] %s request %zu: token %zu is %d, the single-GPU engine's %d, logit gap %.4g (peak %.4g)\n",
                what.c_str(), i, k, g[k], r[k], gap, peak);
    if (gap <= 2 * bound * peak) {
      ++flips;
    } else {
      ADD_FAILURE() << what << " request " << i << " token " << k << ": " << g[k] << " for the reference's " << r[k]
                    << " by a logit gap of " << gap << " (peak " << peak << "): not a near-tie";
    }
  }
  return flips;
}

class EngineCudaRanksTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = new DenseModel(load_bf16("llama_gqa"));
    goldens_ = new std::vector<Golden>(load_goldens("llama_gqa"));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete goldens_;
    model_ = nullptr;
    goldens_ = nullptr;
  }
  static DenseModel* model_;
  static std::vector<Golden>* goldens_;
};
DenseModel* EngineCudaRanksTest::model_ = nullptr;
std::vector<Golden>* EngineCudaRanksTest::goldens_ = nullptr;

TEST_F(EngineCudaRanksTest, GreedyTokensMatchTheSingleGpuEngine) {
  const DenseModel& m = *model_;
  ASSERT_GT(goldens_->size(), kRepeatPrompt);
  ASSERT_EQ(goldens_->at(kRepeatPrompt).ids.size(), 300u);
  const EngineConfig cfg = engine_config();
  EngineRun ref;
  {
    auto single = make_single_engine(m, cfg);
    ASSERT_TRUE(single);
    ref = run_workload(*single, *goldens_);
    EXPECT_EQ(single->kv_manager().num_free_blocks(), single->num_kv_blocks() - 1);
  }
  EXPECT_GE(ref.repeat_cached, 288);  // 18 full blocks of the 300-token prompt
  auto tie_model = cuda::CudaDenseModel::create(m.config(), m.weights(), cuda::test::test_options());
  ASSERT_TRUE(tie_model.is_ok()) << tie_model.status().to_string();

  for (const LayoutCase& lc : layouts()) {
    SCOPED_TRACE(lc.name);
    RanksEngine g = make_ranks_engine(m, cfg, lc.pc, kPoolBlocks);
    ASSERT_TRUE(g.engine) << lc.name;
    EXPECT_EQ(g.engine->num_kv_blocks(), kPoolBlocks);
    EXPECT_EQ(g.engine->layout().world_size(), 1);  // the ranks are the executor's
    const EngineRun got = run_workload(*g.engine, *goldens_);
    const int flips =
        check_tokens(lc.name, got, ref, lc.exchange ? kExchangeBound : kTpBound, lc.exact, **tie_model);
    // The repeat is served from the prefix cache on the ranks too (their caches are indexed by
    // the engine's global block ids).
    EXPECT_EQ(got.repeat_cached, ref.repeat_cached);
    EXPECT_EQ(g.engine->kv_manager().num_free_blocks(), g.engine->num_kv_blocks() - 1);
    // Greedy rows are drawn on the GPU: no logits came to the host.
    EXPECT_GT(g.runner->device_sampled_rows(), 0);
    EXPECT_EQ(g.runner->host_rows(), 0);
    std::printf("[ gpu ] engine on %s: %zu requests, %d near-tie flips vs the single-GPU engine\n",
                g.runner->layout().to_string().c_str(), got.tokens.size(), flips);
  }
}

// Prompt logprobs and top-N logprobs come back as host rows through the ranks: the root's
// gathered logits, near the single-GPU engine's.
TEST_F(EngineCudaRanksTest, HostRowsComeBackFromTheLastStage) {
  const DenseModel& m = *model_;
  const EngineConfig cfg = engine_config();
  const Golden& gd = goldens_->at(1);
  ASSERT_EQ(gd.ids.size(), 33u);
  GenerationRequest scored = greedy_request(gd.ids, 4);
  scored.sampling.logprobs = 2;
  scored.prompt_logprobs = 1;
  auto collect = [&](LLMEngine& e, std::vector<TokenLogprob>& lps, std::vector<std::optional<TokenLogprob>>& plps) {
    e.add_request(scored).value();
    while (e.has_unfinished())
      for (const RequestOutput& o : e.step()) {
        lps.insert(lps.end(), o.logprobs.begin(), o.logprobs.end());
        if (o.prompt_logprobs) plps = *o.prompt_logprobs;
      }
  };
  std::vector<TokenLogprob> ref_lps;
  std::vector<std::optional<TokenLogprob>> ref_plps;
  {
    auto single = make_single_engine(m, cfg);
    ASSERT_TRUE(single);
    collect(*single, ref_lps, ref_plps);
  }
  RanksEngine g = make_ranks_engine(m, cfg, config(2, 2), kPoolBlocks);
  ASSERT_TRUE(g.engine);
  std::vector<TokenLogprob> lps;
  std::vector<std::optional<TokenLogprob>> plps;
  collect(*g.engine, lps, plps);
  ASSERT_EQ(lps.size(), ref_lps.size());
  ASSERT_EQ(plps.size(), gd.ids.size());
  ASSERT_EQ(ref_plps.size(), gd.ids.size());
  double worst = 0;
  for (size_t i = 0; i < lps.size(); ++i) {
    EXPECT_EQ(lps[i].token, ref_lps[i].token) << i;
    worst = std::max(worst, std::fabs(double(lps[i].logprob) - ref_lps[i].logprob));
  }
  for (size_t i = 1; i < plps.size(); ++i) {
    ASSERT_TRUE(plps[i] && ref_plps[i]) << i;
    EXPECT_EQ(plps[i]->token, gd.ids[i]);
    worst = std::max(worst, std::fabs(double(plps[i]->logprob) - ref_plps[i]->logprob));
  }
  std::printf("[ gpu ] tp2xpp2 host rows: worst |ranks - single GPU| %.3g nats\n", worst);
  // TP reorders fp32 sums only (logits within ~4e-3 of their range, sharded_model_test): a few
  // thousandths of a nat on these small logits.
  EXPECT_LT(worst, 0.05);
  // The prompt's 33 rows (the last one also the first sample) and 3 decode rows.
  EXPECT_EQ(g.runner->host_rows(), 33 + 3);
}

TEST_F(EngineCudaRanksTest, AbortFreesEveryBlock) {
  const DenseModel& m = *model_;
  for (const ParallelConfig& pc : {config(2, 1), config(1, 1, 1, 1, 2)}) {
    RanksEngine g = make_ranks_engine(m, engine_config(), pc, kPoolBlocks);
    ASSERT_TRUE(g.engine);
    LLMEngine& e = *g.engine;
    const RequestId a = e.add_request(greedy_request(std::vector<int32_t>(700, 9), 50)).value();
    const RequestId b = e.add_request(greedy_request({5, 6, 7}, 5)).value();
    e.step();  // a is mid-prefill
    EXPECT_GT(e.kv_manager().num_used_blocks(), 0);
    e.abort(a);
    std::map<RequestId, std::string> reasons;
    auto got = run_all(e, &reasons);
    EXPECT_EQ(reasons[a], "abort");
    EXPECT_EQ(reasons[b], "length");
    EXPECT_EQ(got[b].size(), 5u);
    EXPECT_EQ(e.kv_manager().num_free_blocks(), e.num_kv_blocks() - 1);
    // The runner goes on: a new request after the abort runs to its length.
    const RequestId c = e.add_request(greedy_request(goldens_->at(0).ids, 4)).value();
    auto more = run_all(e, &reasons);
    EXPECT_EQ(reasons[c], "length");
    EXPECT_EQ(more[c].size(), 4u);
    EXPECT_EQ(e.kv_manager().num_free_blocks(), e.num_kv_blocks() - 1);
  }
}

// A rank failing mid-step: the step's error names the rank, its peer (blocked in the step's
// collectives) wakes instead of hanging, and every later step is refused with the cause; the
// engine finishes the affected requests with "abort" and frees their blocks.
TEST_F(EngineCudaRanksTest, RankFailureNamesTheRankAndStopsTheRunner) {
  const DenseModel& m = *model_;
  RanksEngine g = make_ranks_engine(m, engine_config(), config(2, 1), kPoolBlocks);
  ASSERT_TRUE(g.engine);
  std::atomic<int> calls{0};
  g.runner->set_step_hook([&](int rank) -> Status {
    // Rank 1 fails on its third step; rank 0 runs into the step's all-reduce and waits there.
    if (rank == 1 && ++calls == 3) return internal_error("injected failure");
    return Status::ok();
  });
  LLMEngine& e = *g.engine;
  const RequestId a = e.add_request(greedy_request(std::vector<int32_t>(300, 11), 8)).value();
  std::map<RequestId, std::string> reasons;
  run_all(e, &reasons);
  EXPECT_EQ(reasons[a], "abort");
  EXPECT_EQ(e.kv_manager().num_free_blocks(), e.num_kv_blocks() - 1);
  // Later steps are refused with the cause, not run on a half-written cache.
  const RequestId b = e.add_request(greedy_request({5, 6, 7}, 3)).value();
  run_all(e, &reasons);
  EXPECT_EQ(reasons[b], "abort");
  // The runner's own answer.
  Request req;
  req.id = 99;
  req.token_ids = {5, 6, 7};
  req.num_prompt_tokens = 3;
  StepPlan plan;
  plan.chunks.push_back(ScheduledChunk{99, 0, 3, true, {1}});
  auto res = g.runner->run(
      plan, [&](RequestId) -> const Request& { return req; }, [](RequestId) { return false; }, {});
  ASSERT_FALSE(res.is_ok());
  EXPECT_NE(res.status().message().find("rank 1: injected failure"), std::string::npos) << res.status().to_string();
  EXPECT_NE(res.status().message().find("stopped"), std::string::npos) << res.status().to_string();
}

// A plan over the step limits is refused before any rank runs: the runner stays usable.
TEST_F(EngineCudaRanksTest, OversizedPlanIsRefusedAndTheRunnerGoesOn) {
  const DenseModel& m = *model_;
  RanksEngine g = make_ranks_engine(m, engine_config(), config(2, 1), kPoolBlocks);
  ASSERT_TRUE(g.engine);
  Request req;
  req.id = 7;
  req.token_ids.assign(200, 3);
  req.num_prompt_tokens = 200;
  StepPlan plan;
  std::vector<int32_t> table;
  for (int32_t b = 1; b <= 13; ++b) table.push_back(b);
  plan.chunks.push_back(ScheduledChunk{7, 0, 200, true, table});  // 200 > 97 tokens
  auto lookup = [&](RequestId) -> const Request& { return req; };
  auto res = g.runner->run(plan, lookup, [](RequestId) { return false; }, {});
  ASSERT_FALSE(res.is_ok());
  EXPECT_NE(res.status().message().find("at most 97"), std::string::npos) << res.status().to_string();
  const Golden& gd = goldens_->at(0);
  const RequestId id = g.engine->add_request(greedy_request(gd.ids, 4)).value();
  std::map<RequestId, std::string> reasons;
  auto got = run_all(*g.engine, &reasons);
  EXPECT_EQ(reasons[id], "length");
  EXPECT_EQ(got[id].size(), 4u);
}

// Layouts the GPU model does not run: refused with its own message, before any device work.
TEST_F(EngineCudaRanksTest, LayoutsTheGpuModelDoesNotRunAreRefusedWithItsMessage) {
  const DenseModel& m = *model_;
  CudaParallelRunnerOptions ro;
  ro.model = model_options(engine_config(), kPoolBlocks);
  struct Case {
    ParallelConfig pc;
    std::string says;
  };
  ParallelConfig helix = config(1, 1, 1, 2, 1, 16);
  helix.helix = true;
  const Case cases[] = {
      {helix, "the Helix exchange"},
      {config(4, 1, 2, 1, 2), "does not combine --cp with --dcp or --kvp yet"},
      {config(2, 1, 1, 2, 2, 32), "does not combine --cp with --dcp or --kvp yet"},
  };
  for (const Case& c : cases) {
    auto layout = make_layout(m, c.pc, 16);
    ASSERT_TRUE(layout.is_ok()) << layout.status().to_string();
    const Status check = CudaParallelRunner::check_layout(m.config(), *layout, ro.model);
    EXPECT_NE(check.message().find(c.says), std::string::npos) << check.to_string();
    auto r = CudaParallelRunner::create(m.config(), m.weights(), *layout, ro);
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.status().message().find(c.says), std::string::npos) << r.status().to_string();
  }
  // What it runs passes the check.
  for (const LayoutCase& lc : layouts()) {
    auto layout = make_layout(m, lc.pc, 16);
    ASSERT_TRUE(layout.is_ok()) << lc.name << ": " << layout.status().to_string();
    const Status ok = CudaParallelRunner::check_layout(m.config(), *layout, ro.model);
    EXPECT_TRUE(ok.is_ok()) << lc.name << ": " << ok.to_string();
  }
  // cp must divide the block size on the GPU: the model's message, naming both flags.
  ParallelConfig cp3 = config(1, 1, 1, 1, 3);
  auto odd = make_layout(m, cp3, 16);
  ASSERT_TRUE(odd.is_ok()) << odd.status().to_string();
  const Status st = CudaParallelRunner::check_layout(m.config(), *odd, ro.model);
  EXPECT_NE(st.message().find("--cp 3 must divide --block-size 16"), std::string::npos) << st.to_string();
}

// No pool given: planned over the GPU's memory for every rank on it (here both tp2 ranks on
// GPU 0 when the machine has one): the pool times the ranks' bytes per engine block fits the
// budget, and the engine runs on it.
TEST_F(EngineCudaRanksTest, PoolIsPlannedOverTheRanksSharingAGpu) {
  const DenseModel& m = *model_;
  const EngineConfig cfg = engine_config();
  const double utilization = 0.1;
  RanksEngine g = make_ranks_engine(m, cfg, config(2, 1), 0, utilization);
  ASSERT_TRUE(g.engine);
  const CudaParallelRunner& r = *g.runner;
  EXPECT_EQ(g.engine->num_kv_blocks(), r.num_kv_blocks());
  EXPECT_GT(r.num_kv_blocks(), 4096 / 16 + 1);
  size_t free_b = 0, total_b = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_b, &total_b), cudaSuccess);
  for (int d = 0; d < r.num_devices(); ++d) {
    size_t kv = 0;
    for (int k = 0; k < r.world_size(); ++k) {
      if (r.device_of(k) != d) continue;
      EXPECT_EQ(r.model(k).num_kv_blocks(), r.num_kv_blocks());
      kv += static_cast<size_t>(r.num_kv_blocks()) * r.model(k).memory_plan().bytes_per_block;
    }
    EXPECT_LE(kv, static_cast<size_t>(utilization * static_cast<double>(total_b))) << "GPU " << d;
  }
  const Golden& gd = goldens_->at(1);
  const RequestId id = g.engine->add_request(greedy_request(gd.ids, kDecodeTokens)).value();
  auto got = run_all(*g.engine);
  EXPECT_EQ(got[id].size(), size_t(kDecodeTokens));
}

// The pool arithmetic alone (no GPU): the tightest GPU's share, and the error naming it.
TEST(CudaParallelRunnerPlan, PoolIsTheTightestGpusShare) {
  constexpr size_t kGiB = size_t{1} << 30;
  // GPU 0: two ranks of 2 KiB per engine block each; GPU 1: one rank, more memory in use.
  const std::vector<GpuRanksMemory> gpus = {{80 * kGiB, 10 * kGiB, 4096, 2}, {80 * kGiB, 20 * kGiB, 2048, 1}};
  std::string why;
  auto pool = CudaParallelRunner::pool_over_gpus(gpus, 0.5, 257, 4096, &why);
  ASSERT_TRUE(pool.is_ok()) << pool.status().to_string();
  EXPECT_EQ(*pool, static_cast<int64_t>(30 * kGiB / 4096));  // GPU 0: (40 - 10) GiB / 4 KiB < GPU 1's 20 GiB / 2 KiB
  EXPECT_NE(why.find("GPU 0 (2 ranks)"), std::string::npos) << why;
  // GPU 1 tighter when its ranks' blocks are larger.
  std::vector<GpuRanksMemory> other = gpus;
  other[1].bytes_per_block = 8192;
  auto pool1 = CudaParallelRunner::pool_over_gpus(other, 0.5, 257, 4096, &why);
  ASSERT_TRUE(pool1.is_ok());
  EXPECT_EQ(*pool1, static_cast<int64_t>(20 * kGiB / 8192));
  EXPECT_NE(why.find("GPU 1 (1 ranks)"), std::string::npos) << why;
  // A budget under what is in use: no room, the flag and the numbers named.
  auto none = CudaParallelRunner::pool_over_gpus(gpus, 0.1, 257, 4096);
  ASSERT_FALSE(none.is_ok());
  EXPECT_NE(none.status().message().find("no room for the KV cache"), std::string::npos) << none.status().to_string();
  EXPECT_NE(none.status().message().find("--gpu-memory-utilization 0.10"), std::string::npos)
      << none.status().to_string();
  // Room, but less than one sequence of max_model_len.
  auto short_pool = CudaParallelRunner::pool_over_gpus(gpus, 0.5, *pool + 1, 4096);
  ASSERT_FALSE(short_pool.is_ok());
  EXPECT_NE(short_pool.status().message().find("needs " + std::to_string(*pool + 1)), std::string::npos)
      << short_pool.status().to_string();
}

}  // namespace
}  // namespace longctx
