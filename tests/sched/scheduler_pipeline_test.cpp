// What the simulator's pipelines and 10M-token requests need from the scheduler: a
// running request whose sampled token has not arrived is skipped (not given an empty
// chunk), and block tables are copied into the plan only when asked.
#include <gtest/gtest.h>

#include <memory>

#include "sched/scheduler.h"

namespace longctx {
namespace {

Request make(RequestId id, int64_t prompt) {
  Request r;
  r.id = id;
  r.token_ids.assign(static_cast<size_t>(prompt), 0);
  r.num_prompt_tokens = prompt;
  r.max_tokens = 4;
  return r;
}

TEST(SchedulerPipeline, SkipsRequestsWaitingForTheirToken) {
  KVCacheManager kv({64, 16, false});
  SchedulerConfig cfg;
  cfg.max_num_batched_tokens = 64;
  cfg.max_model_len = 512;
  Scheduler sched(cfg, kv, std::make_unique<FcfsPolicy>());
  Request a = make(1, 10), b = make(2, 20);
  ASSERT_TRUE(sched.add_request(&a).is_ok());
  StepPlan p1 = sched.schedule(0);
  ASSERT_EQ(p1.chunks.size(), 1u);
  EXPECT_TRUE(p1.chunks[0].sample);
  sched.on_step_done(p1);
  // a's token is still in flight: a has nothing to compute; b is admitted alone.
  ASSERT_TRUE(sched.add_request(&b).is_ok());
  StepPlan p2 = sched.schedule(0.1);
  ASSERT_EQ(p2.chunks.size(), 1u);
  EXPECT_EQ(p2.chunks[0].request_id, 2);
  EXPECT_EQ(p2.num_batched_tokens, 20);
  sched.on_step_done(p2);
  // Both tokens arrive: both decode.
  a.token_ids.push_back(0);
  b.token_ids.push_back(0);
  StepPlan p3 = sched.schedule(0.2);
  ASSERT_EQ(p3.chunks.size(), 2u);
  for (const auto& c : p3.chunks) EXPECT_EQ(c.num_tokens, 1);
  // Nothing left to compute for either: an empty plan, not empty chunks.
  sched.on_step_done(p3);
  EXPECT_TRUE(sched.schedule(0.3).empty());
  EXPECT_EQ(sched.num_running(), 2);
}

TEST(SchedulerPipeline, BlockTablesOnlyWhenAsked) {
  for (bool fill : {true, false}) {
    KVCacheManager kv({64, 16, false});
    SchedulerConfig cfg;
    cfg.max_num_batched_tokens = 64;
    cfg.max_model_len = 512;
    cfg.fill_block_tables = fill;
    Scheduler sched(cfg, kv, std::make_unique<FcfsPolicy>());
    Request a = make(1, 40);
    ASSERT_TRUE(sched.add_request(&a).is_ok());
    StepPlan p = sched.schedule(0);
    ASSERT_EQ(p.chunks.size(), 1u);
    EXPECT_EQ(p.chunks[0].block_table.size(), fill ? 3u : 0u);
    EXPECT_EQ(kv.block_table(1).size(), 3u);  // allocated either way
  }
}

}  // namespace
}  // namespace longctx
