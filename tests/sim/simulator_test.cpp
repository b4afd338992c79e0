#include "sim/simulator.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "sim/report.h"
#include "sim/trace.h"

namespace longctx {
namespace {

SimConfig small_config(int64_t budget) {
  SimConfig cfg;
  cfg.scheduler.max_num_batched_tokens = budget;
  cfg.scheduler.max_num_seqs = 16;
  cfg.scheduler.max_model_len = 1024;
  cfg.kv = {256, 16, false};
  return cfg;
}

// Constant 0.125 s steps (exact in binary), budget 8 tokens, FCFS:
//   step 1 [0, .125]     R0 prefill 8/10
//   step 2 [.125, .25]   R0 prefill 2 → token 1 at .25       (R1 arrives at .2, mid-step)
//   step 3 [.25, .375]   R0 decode → token 2; R1 prefill 4 → token 1 at .375
//   step 4 [.375, .5]    R0 → token 3 (done, e2e .5); R1 → token 2 (done)
//   idle until R2 arrives at 1.0
//   step 5 [1, 1.125]    R2 prefill 3 → its only token (done)
TEST(Simulator, ConstantCostMatchesHandTimeline) {
  const std::vector<TraceRequest> trace = {{0.0, 10, 3}, {0.2, 4, 2}, {1.0, 3, 1}};
  ConstantCostModel cost(0.125);
  auto res = simulate(trace, small_config(8), cost);
  ASSERT_TRUE(res.is_ok()) << res.status().to_string();
  const auto& r = res->requests;
  EXPECT_EQ(res->num_steps, 5);
  EXPECT_DOUBLE_EQ(res->duration_s, 1.125);
  EXPECT_DOUBLE_EQ(res->busy_s, 0.625);
  EXPECT_DOUBLE_EQ(r[0].first_token_s, 0.25);
  EXPECT_EQ(r[0].tbt_s, (std::vector<double>{0.125, 0.125}));
  EXPECT_DOUBLE_EQ(r[0].finish_s, 0.5);
  EXPECT_DOUBLE_EQ(r[1].first_token_s, 0.375);
  EXPECT_DOUBLE_EQ(r[1].ttft_s(), 0.375 - 0.2);
  EXPECT_EQ(r[1].tbt_s, (std::vector<double>{0.125}));
  EXPECT_DOUBLE_EQ(r[1].finish_s, 0.5);
  EXPECT_DOUBLE_EQ(r[2].first_token_s, 1.125);
  EXPECT_DOUBLE_EQ(r[2].finish_s, 1.125);
  EXPECT_TRUE(r[2].tbt_s.empty());

  const auto classes = summarize(*res, /*long_threshold=*/10);  // R0 is "long"
  ASSERT_EQ(classes.size(), 3u);
  EXPECT_EQ(classes[0].count, 2);
  EXPECT_EQ(classes[1].count, 1);
  EXPECT_DOUBLE_EQ(classes[1].ttft_p50, 0.25);
  EXPECT_DOUBLE_EQ(classes[0].e2e_p50, (0.3 + 0.125) / 2);
  EXPECT_DOUBLE_EQ(classes[2].throughput_tok_s, (13 + 6 + 4) / 1.125);
}

// A request overhead delays when each request reaches the scheduler; TTFT counts it
// from the trace's arrival. With 0.5 s (exact in binary) the hand timeline above shifts:
//   R0 reaches the engine at .5: steps [.5,.625] [.625,.75] → token 1 at .75 (TTFT .75)
//   R1 reaches it at .7, mid-step 2: step 3 [.75,.875] → its token 1 at .875 (TTFT .675)
//   R2 reaches it at 1.5: its token at 1.625 (TTFT .625)
TEST(Simulator, RequestOverheadDelaysAdmissionAndCountsInTtft) {
  const std::vector<TraceRequest> trace = {{0.0, 10, 3}, {0.2, 4, 2}, {1.0, 3, 1}};
  ConstantCostModel cost(0.125);
  SimConfig cfg = small_config(8);
  cfg.request_overhead_s = 0.5;
  auto res = simulate(trace, cfg, cost);
  ASSERT_TRUE(res.is_ok()) << res.status().to_string();
  const auto& r = res->requests;
  EXPECT_DOUBLE_EQ(r[0].arrival_s, 0.0);
  EXPECT_DOUBLE_EQ(r[0].ttft_s(), 0.75);
  EXPECT_EQ(r[0].tbt_s, (std::vector<double>{0.125, 0.125}));
  EXPECT_DOUBLE_EQ(r[1].ttft_s(), 0.875 - 0.2);
  EXPECT_DOUBLE_EQ(r[2].ttft_s(), 1.625 - 1.0);
  EXPECT_EQ(res->num_steps, 5);
  cfg.request_overhead_s = -1;
  auto bad = simulate(trace, cfg, cost);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("--request-overhead"), std::string::npos);
}

// Idle wake: the first step after the engine sat idle costs 0.5 s more — here step 1 (the
// engine starts idle) and the step after the gap before R2:
//   step 1 [0, .625]    R0 prefill 8/10 (R1 arrives at .2, during it)
//   step 2 [.625, .75]  R0 prefill 2 → token 1; R1 prefill 4 → token 1 (both at .75)
//   step 3 [.75, .875]  R0 → token 2; R1 → token 2 (done)
//   step 4 [.875, 1]    R0 → token 3 (done); then idle
//   step 5 [1.5, 2.125] R2 (arrived 1.5, woke the engine) → its token at 2.125
TEST(Simulator, IdleWakeCostsTheFirstStepAfterIdle) {
  const std::vector<TraceRequest> trace = {{0.0, 10, 3}, {0.2, 4, 2}, {1.5, 3, 1}};
  ConstantCostModel cost(0.125);
  SimConfig cfg = small_config(8);
  cfg.idle_wake_s = 0.5;
  auto res = simulate(trace, cfg, cost);
  ASSERT_TRUE(res.is_ok()) << res.status().to_string();
  const auto& r = res->requests;
  EXPECT_DOUBLE_EQ(r[0].first_token_s, 0.75);
  EXPECT_DOUBLE_EQ(r[1].first_token_s, 0.75);
  EXPECT_DOUBLE_EQ(r[1].finish_s, 0.875);
  EXPECT_DOUBLE_EQ(r[0].finish_s, 1.0);
  EXPECT_DOUBLE_EQ(r[2].first_token_s, 2.125);
  EXPECT_EQ(res->num_steps, 5);
  EXPECT_DOUBLE_EQ(res->busy_s, 0.625 + 3 * 0.125 + 0.625);
  // A step scale of 2 doubles every step (the wake penalty is added after the scale).
  // R2 arrives at 3.0 here, after the engine went idle at 1.5: two wakes again.
  cfg.step_scale = 2.0;
  const std::vector<TraceRequest> later = {{0.0, 10, 3}, {0.2, 4, 2}, {3.0, 3, 1}};
  auto scaled = simulate(later, cfg, cost);
  ASSERT_TRUE(scaled.is_ok());
  EXPECT_EQ(scaled->num_steps, 5);
  EXPECT_DOUBLE_EQ(scaled->busy_s, 5 * 2 * 0.125 + 2 * 0.5);
  EXPECT_DOUBLE_EQ(scaled->requests[2].first_token_s, 3.0 + 2 * 0.125 + 0.5);
  cfg.step_scale = 0;
  auto zero = simulate(trace, cfg, cost);
  ASSERT_FALSE(zero.is_ok());
  EXPECT_NE(zero.status().message().find("--step-scale"), std::string::npos);
  cfg.step_scale = 1.0;
  cfg.idle_wake_s = -0.1;
  auto bad = simulate(trace, cfg, cost);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("--idle-wake"), std::string::npos);
}

TEST(Simulator, RejectsWhatCanNeverRun) {
  const std::vector<TraceRequest> trace = {{0.0, 5000, 1}, {0.0, 5, 1}};
  ConstantCostModel cost(0.5);
  auto res = simulate(trace, small_config(8), cost);
  ASSERT_TRUE(res.is_ok());
  EXPECT_TRUE(res->requests[0].rejected);
  EXPECT_NE(res->requests[0].reject_reason.find("context length"), std::string::npos);
  EXPECT_DOUBLE_EQ(res->requests[1].finish_s, 0.5);
}

TEST(Simulator, PreemptionUnderMemoryPressureStillFinishesEverything) {
  // 6 blocks of 16 tokens: three 30-token requests growing to 40 cannot all stay.
  std::vector<TraceRequest> trace;
  for (int i = 0; i < 3; ++i) trace.push_back({0.0, 30, 10});
  SimConfig cfg = small_config(64);
  cfg.kv = {7, 16, false};
  ConstantCostModel cost(0.01);
  auto res = simulate(trace, cfg, cost);
  ASSERT_TRUE(res.is_ok()) << res.status().to_string();
  EXPECT_GT(res->num_preemptions, 0);
  for (const auto& r : res->requests) {
    EXPECT_GE(r.finish_s, 0);
    EXPECT_EQ(static_cast<int64_t>(r.tbt_s.size()), r.output_tokens - 1);
  }
}

TEST(Workload, ParsesMixesAndIsDeterministic) {
  auto a = generate_workload("mix:n=2000,rate=4,prompts=0.9@1k-8k+0.1@1m,out=16-32,seed=7");
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  auto b = generate_workload("mix:n=2000,rate=4,prompts=0.9@1k-8k+0.1@1m,out=16-32,seed=7");
  ASSERT_EQ(a->size(), 2000u);
  int64_t longs = 0;
  for (size_t i = 0; i < a->size(); ++i) {
    const auto& r = (*a)[i];
    EXPECT_EQ(r.prompt_tokens, (*b)[i].prompt_tokens);
    EXPECT_TRUE((r.prompt_tokens >= 1024 && r.prompt_tokens <= 8192) || r.prompt_tokens == 1048576);
    EXPECT_GE(r.output_tokens, 16);
    EXPECT_LE(r.output_tokens, 32);
    if (i > 0) {
      EXPECT_GE(r.arrival_s, (*a)[i - 1].arrival_s);
    }
    longs += r.prompt_tokens == 1048576;
  }
  EXPECT_NEAR(double(longs) / 2000, 0.1, 0.03);
  EXPECT_NEAR(a->back().arrival_s, 2000 / 4.0, 50);  // Poisson: mean gap 1/rate
  EXPECT_FALSE(generate_workload("mix:n=10,prompts=1@abc").is_ok());
  EXPECT_FALSE(generate_workload("poisson:n=10").is_ok());
  EXPECT_FALSE(generate_workload("mix:n=10,colour=red").is_ok());
}

TEST(Trace, RoundTripAndErrorsNameTheLine) {
  const auto dir = std::filesystem::temp_directory_path();
  const auto path = dir / "longctx_sim_trace_test.jsonl";
  const std::vector<TraceRequest> t = {{0.5, 1000000, 128}, {0.25, 10, 1}};
  ASSERT_TRUE(write_trace(path, t).is_ok());
  auto back = load_trace(path);
  ASSERT_TRUE(back.is_ok());
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ((*back)[0].prompt_tokens, 10);  // sorted by arrival
  EXPECT_EQ((*back)[1].prompt_tokens, 1000000);
  {
    std::ofstream out(path);
    out << R"({"arrival_s": 0, "prompt_tokens": 5, "output_tokens": 1})"
        << "\n"
        << R"({"arrival_s": 0, "prompt_tokens": 5})"
        << "\n";
  }
  auto bad = load_trace(path);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find(":2: field \"output_tokens\""), std::string::npos);
  std::filesystem::remove(path);
}

TEST(Percentile, LinearInterpolation) {
  EXPECT_DOUBLE_EQ(percentile({1, 2, 3, 4}, 50), 2.5);
  EXPECT_DOUBLE_EQ(percentile({4, 1, 3, 2}, 100), 4);
  EXPECT_DOUBLE_EQ(percentile({7}, 99), 7);
  EXPECT_DOUBLE_EQ(percentile({}, 50), 0);
}

}  // namespace
}  // namespace longctx
