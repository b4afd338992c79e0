// Pools, replicas and pipelines in the simulator, on constant-cost models whose
// timelines are worked out by hand in the comments.
#include <gtest/gtest.h>

#include "sim/report.h"
#include "sim/simulator.h"

namespace longctx {
namespace {

SimConfig config(int64_t budget) {
  SimConfig cfg;
  cfg.scheduler.max_num_batched_tokens = budget;
  cfg.scheduler.max_num_seqs = 16;
  return cfg;
}

SimPool pool(const char* name, int64_t replicas, const CostModel& cost, int64_t lo, int64_t hi) {
  SimPool p;
  p.name = name;
  p.replicas = replicas;
  p.cost = &cost;
  p.kv = {256, 16, false};
  p.max_model_len = 1024;
  p.min_prompt_tokens = lo;
  p.max_prompt_tokens = hi;
  return p;
}

// A constant-cost model with pipeline stages.
class PipelinedConstantCost final : public CostModel {
 public:
  PipelinedConstantCost(double stage_s, int64_t stages) : stage_s_(stage_s), stages_(stages) {}
  double step_time_s(std::span<const ChunkWork> c) const override { return c.empty() ? 0 : stage_s_; }
  int64_t pipeline_stages() const override { return stages_; }

 private:
  double stage_s_;
  int64_t stages_;
};

// Short pool: 2 replicas; long pool (prompts >= 8): 1. Steps 0.125 s, budget 8.
//   L (10 tokens, 1 out) → long pool:    [0,.125] prefill 8, [.125,.25] 2 → token, done .25
//   A (4, 2 out) → short 0 (tie: first): [0,.125] prefill → token; [.125,.25] token, done
//   B (4, 2) → short 1 (A's load 6 > 0): the same times as A
//   C (4, 1) at .05 → short 0 (loads 6 and 6: first): joins at .125, token at .25, done
TEST(SimulatorPools, RoutesByLengthAndLoad) {
  const std::vector<TraceRequest> trace = {{0.0, 10, 1}, {0.0, 4, 2}, {0.0, 4, 2}, {0.05, 4, 1}};
  ConstantCostModel cost(0.125);
  auto res = simulate_pools(trace, config(8), {pool("short", 2, cost, 0, 8), pool("long", 1, cost, 8, INT64_MAX)});
  ASSERT_TRUE(res.is_ok()) << res.status().to_string();
  const auto& r = res->requests;
  EXPECT_EQ(r[0].pool, 1);
  EXPECT_EQ(r[1].pool, 0);
  EXPECT_EQ(r[1].replica, 0);
  EXPECT_EQ(r[2].replica, 1);
  EXPECT_EQ(r[3].replica, 0);
  EXPECT_DOUBLE_EQ(r[0].first_token_s, 0.25);
  EXPECT_DOUBLE_EQ(r[1].first_token_s, 0.125);
  EXPECT_DOUBLE_EQ(r[2].first_token_s, 0.125);
  EXPECT_DOUBLE_EQ(r[3].first_token_s, 0.25);
  EXPECT_DOUBLE_EQ(r[3].ttft_s(), 0.2);
  for (const auto& q : r) EXPECT_DOUBLE_EQ(q.finish_s, 0.25);
  EXPECT_EQ(res->num_steps, 6);
  EXPECT_EQ(res->num_replicas, 3);
  EXPECT_DOUBLE_EQ(res->duration_s, 0.25);
  EXPECT_DOUBLE_EQ(utilisation(*res), 1.0);  // 6 steps · .125 = 3 replicas · .25
}

TEST(SimulatorPools, PromptsNoPoolTakesAreRejected) {
  ConstantCostModel cost(0.5);
  auto res = simulate_pools({{0.0, 20, 1}, {0.0, 4, 1}}, config(8), {pool("short", 1, cost, 0, 8)});
  ASSERT_TRUE(res.is_ok());
  EXPECT_TRUE(res->requests[0].rejected);
  EXPECT_NE(res->requests[0].reject_reason.find("no pool"), std::string::npos);
  EXPECT_DOUBLE_EQ(res->requests[1].finish_s, 0.5);
}

// 2 stages of 0.125 s, budget 8; R (20 tokens, 2 out):
//   [0,.125] chunk 8; [.125,.25] chunk 8 (pipelined: it does not wait for the first);
//   [.25,.375] chunk 4, samples → the token leaves the pipeline at .25 + 2·.125 = .5;
//   .375–.5 R has nothing to compute; [.5,.625] decode → token at .75, done.
TEST(SimulatorPipeline, PrefillChunksPipelineAndTokensWaitForTheLastStage) {
  PipelinedConstantCost cost(0.125, 2);
  SimConfig cfg = config(8);
  cfg.kv = {256, 16, false};
  cfg.scheduler.max_model_len = 1024;
  auto res = simulate({{0.0, 20, 2}}, cfg, cost);
  ASSERT_TRUE(res.is_ok()) << res.status().to_string();
  const SimRequest& r = res->requests[0];
  EXPECT_DOUBLE_EQ(r.first_token_s, 0.5);
  EXPECT_EQ(r.tbt_s, (std::vector<double>{0.25}));
  EXPECT_DOUBLE_EQ(r.finish_s, 0.75);
  EXPECT_EQ(res->num_steps, 4);
  EXPECT_DOUBLE_EQ(res->busy_s, 0.5);
  EXPECT_DOUBLE_EQ(res->duration_s, 0.75);
}

// Two requests prefilled in one step [0,.125] get their tokens together two stages
// later (.25); with nothing else to run the pipeline idles from .125 to .25; their
// decode step [.25,.375] returns at .5.
TEST(SimulatorPipeline, DecodesOfOneStepReturnTogether) {
  PipelinedConstantCost cost(0.125, 2);
  SimConfig cfg = config(16);
  cfg.kv = {256, 16, false};
  cfg.scheduler.max_model_len = 1024;
  auto res = simulate({{0.0, 4, 2}, {0.0, 4, 2}}, cfg, cost);
  ASSERT_TRUE(res.is_ok());
  for (const auto& r : res->requests) {
    EXPECT_DOUBLE_EQ(r.first_token_s, 0.25);
    EXPECT_DOUBLE_EQ(r.finish_s, 0.5);
  }
  EXPECT_EQ(res->num_steps, 2);
}

TEST(SimulatorPools, InvalidPoolsAreErrors) {
  ConstantCostModel cost(0.5);
  SimPool p = pool("x", 0, cost, 0, 8);
  auto res = simulate_pools({{0.0, 4, 1}}, config(8), {p});
  ASSERT_FALSE(res.is_ok());
  EXPECT_NE(res.status().message().find("replicas"), std::string::npos);
  EXPECT_FALSE(simulate_pools({{0.0, 4, 1}}, config(8), {}).is_ok());
}

}  // namespace
}  // namespace longctx
