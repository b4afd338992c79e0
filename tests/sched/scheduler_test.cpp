// The scheduler on random workloads, without a model: the engine's step is simulated
// (sampled chunks append a token). Invariants after every step; every request ends.
#include "sched/scheduler.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>

namespace longctx {
namespace {

struct Sim {
  KVCacheManager kv;
  Scheduler sched;
  std::map<RequestId, std::unique_ptr<Request>> reqs;
  Sim(int32_t blocks, SchedulerConfig cfg) : kv({blocks, 16, true}), sched(cfg, kv, std::make_unique<FcfsPolicy>()) {}

  Request* make(RequestId id, int64_t prompt, int64_t max_tokens, double arrival) {
    auto r = std::make_unique<Request>();
    r->id = id;
    r->token_ids.assign(static_cast<size_t>(prompt), 0);
    for (int64_t i = 0; i < prompt; ++i) r->token_ids[static_cast<size_t>(i)] = static_cast<int32_t>((id * 7 + i) % 97);
    r->num_prompt_tokens = prompt;
    r->max_tokens = max_tokens;
    r->arrival_time_s = arrival;
    Request* p = r.get();
    reqs[id] = std::move(r);
    return p;
  }
  // One step; returns the plan. Finished requests are removed.
  StepPlan step(double now, const SchedulerConfig& cfg) {
    StepPlan plan = sched.schedule(now);
    EXPECT_LE(plan.num_batched_tokens, cfg.max_num_batched_tokens);
    EXPECT_LE(sched.num_running(), cfg.max_num_seqs);
    int64_t sum = 0;
    for (const auto& c : plan.chunks) {
      sum += c.num_tokens;
      EXPECT_GE(c.num_tokens, 1);
      EXPECT_GE(static_cast<int64_t>(c.block_table.size()) * 16, c.start + c.num_tokens);  // room for the chunk
      const Request& r = *reqs.at(c.request_id);
      EXPECT_EQ(c.start, r.num_computed_tokens);
      EXPECT_LE(c.start + c.num_tokens, r.num_tokens());
    }
    EXPECT_EQ(sum, plan.num_batched_tokens);
    sched.on_step_done(plan);
    for (const auto& c : plan.chunks) {
      if (!c.sample) continue;
      Request& r = *reqs.at(c.request_id);
      r.token_ids.push_back(1);
      if (r.num_output_tokens() >= r.max_tokens) {
        sched.finish(r.id);
        reqs.erase(r.id);
      }
    }
    EXPECT_TRUE(kv.pool().check_invariants());
    return plan;
  }
};

TEST(Scheduler, RandomWorkloadsRespectBudgetsPreemptAndFinishWithoutLeaks) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    SchedulerConfig cfg;
    cfg.max_num_batched_tokens = 128;
    cfg.max_num_seqs = 8;
    cfg.max_model_len = 4096;
    Sim sim(96, cfg);  // 95 blocks: pressure, so preemption happens
    std::mt19937 rng(seed);
    RequestId next = 1;
    int64_t preemptions = 0;
    for (int step = 0; step < 3000 && (step < 200 || sim.sched.has_unfinished()); ++step) {
      if (step < 200 && rng() % 3 == 0) {
        Request* r = sim.make(next++, 1 + rng() % 600, 1 + rng() % 40, step);
        ASSERT_TRUE(sim.sched.add_request(r).is_ok());
      }
      preemptions += static_cast<int64_t>(sim.step(step, cfg).preempted.size());
    }
    EXPECT_FALSE(sim.sched.has_unfinished()) << "seed " << seed;
    EXPECT_TRUE(sim.reqs.empty());
    EXPECT_GT(preemptions, 0) << "the workload should have forced preemption";
    EXPECT_EQ(sim.kv.num_free_blocks(), sim.kv.num_total_blocks());
  }
}

TEST(Scheduler, LongPromptIsChunkedAndDecodesRunEveryStep) {
  SchedulerConfig cfg;
  cfg.max_num_batched_tokens = 64;
  cfg.max_model_len = 4096;
  Sim sim(512, cfg);
  ASSERT_TRUE(sim.sched.add_request(sim.make(1, 4, 100, 0)).is_ok());
  sim.step(0, cfg);  // short request prefilled
  ASSERT_TRUE(sim.sched.add_request(sim.make(2, 1000, 1, 1)).is_ok());
  int steps = 0;
  while (sim.reqs.count(2)) {
    StepPlan plan = sim.step(1 + steps, cfg);
    ASSERT_EQ(plan.chunks.front().request_id, 1);  // the running decode goes first, every step
    EXPECT_EQ(plan.chunks.front().num_tokens, 1);
    ASSERT_EQ(plan.chunks.size(), 2u);
    EXPECT_LE(plan.chunks.back().num_tokens, 63);  // the long prompt gets the rest of the budget
    ++steps;
  }
  EXPECT_EQ(steps, (1000 + 62) / 63);
}

TEST(Scheduler, AdmissionRejectsWhatCanNeverRun) {
  SchedulerConfig cfg;
  cfg.max_model_len = 1000;
  Sim sim(32, cfg);  // 31 blocks = 496 tokens
  Status too_long = sim.sched.add_request(sim.make(1, 990, 20, 0));
  EXPECT_FALSE(too_long.is_ok());
  EXPECT_NE(too_long.message().find("context length"), std::string::npos) << too_long.message();
  Status too_big = sim.sched.add_request(sim.make(2, 480, 100, 0));
  EXPECT_FALSE(too_big.is_ok());
  EXPECT_NE(too_big.message().find("KV blocks"), std::string::npos) << too_big.message();
  Status empty = sim.sched.add_request(sim.make(3, 0, 5, 0));
  EXPECT_FALSE(empty.is_ok());
  EXPECT_FALSE(sim.sched.has_unfinished());
}

TEST(Scheduler, PreemptedRequestKeepsItsPlaceInTheQueue) {
  SchedulerConfig cfg;
  cfg.max_num_batched_tokens = 1024;
  cfg.max_model_len = 4096;
  Sim sim(25, cfg);  // 24 blocks = 384 tokens: one 320-token request fits, two do not
  ASSERT_TRUE(sim.sched.add_request(sim.make(1, 120, 200, 0)).is_ok());
  ASSERT_TRUE(sim.sched.add_request(sim.make(2, 120, 200, 1)).is_ok());
  ASSERT_TRUE(sim.sched.add_request(sim.make(3, 10, 5, 2)).is_ok());
  bool saw_preemption = false;
  for (int s = 0; s < 400 && sim.sched.has_unfinished(); ++s) {
    StepPlan plan = sim.step(s, cfg);
    for (RequestId id : plan.preempted) {
      EXPECT_EQ(id, sim.reqs.count(3) ? 3 : 2);  // the latest arrival goes first
      saw_preemption = true;
    }
  }
  EXPECT_TRUE(saw_preemption);
  EXPECT_FALSE(sim.sched.has_unfinished());
}

}  // namespace
}  // namespace longctx
