// Adaptive chunking (Medha): chunk sizes from the cost model, shrinking as the prefix
// grows; the floor; the long-prefill share; and the Scheduler using the hook.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "sched/chunk_sizer.h"
#include "sched/scheduler.h"
#include "sched/test_cost_models.h"

namespace longctx {
namespace {

Request long_request(int64_t prompt) {
  Request r;
  r.id = 100;
  r.token_ids.assign(static_cast<size_t>(prompt), 0);
  r.num_prompt_tokens = prompt;
  return r;
}

StepPlan decodes(int n, int64_t context) {
  StepPlan p;
  for (int i = 0; i < n; ++i) p.chunks.push_back({i, context, 1, true, {}});
  p.num_batched_tokens = n;
  return p;
}

struct Fixture {
  RooflineCostModel cost{model_shape(testing::llama_8b_config()), builtin_hardware("h100").value(), 8};
  AdaptiveChunkConfig cfg;
  Fixture() {
    cfg.tbt_slo_s = 0.05;
    cfg.min_chunk = 32;
    cfg.max_num_batched_tokens = 16384;
    cfg.long_prefill_share = 1.0;
  }
};

TEST(AdaptiveChunkSizer, ChunksShrinkAsThePrefixGrows) {
  Fixture f;
  AdaptiveChunkSizer sizer(f.cost, f.cfg);
  const Request r = long_request(1 << 20);
  const StepPlan plan = decodes(16, 4000);
  int64_t prev = INT64_MAX;
  std::vector<int64_t> sizes;
  for (int64_t start : {0, 65536, 262144, 524288, 1000000}) {
    const int64_t n = sizer.chunk_tokens(r, start, 16384, plan);
    sizes.push_back(n);
    EXPECT_LT(n, prev) << "start " << start;
    prev = n;
    // The largest chunk that fits: n fits the SLO, n + 1 does not.
    auto work = step_work(plan);
    work.push_back({start, n});
    EXPECT_LE(f.cost.step_time_s(work), f.cfg.tbt_slo_s);
    work.back().new_tokens = n + 1;
    EXPECT_GT(f.cost.step_time_s(work), f.cfg.tbt_slo_s);
  }
  EXPECT_GT(sizes.front(), 4 * sizes.back());
}

TEST(AdaptiveChunkSizer, NeverBelowTheFloorNorAboveWhatIsLeft) {
  Fixture f;
  f.cfg.tbt_slo_s = 1e-4;  // below even the step overhead: nothing fits
  AdaptiveChunkSizer sizer(f.cost, f.cfg);
  const Request r = long_request(1 << 20);
  EXPECT_EQ(sizer.chunk_tokens(r, 500000, 16384, decodes(4, 100)), 32);
  EXPECT_EQ(sizer.chunk_tokens(r, 500000, 20, decodes(4, 100)), 20);  // only 20 left in the budget
  EXPECT_EQ(sizer.chunk_tokens(r, 0, 1, decodes(4, 100)), 1);
}

TEST(AdaptiveChunkSizer, LongPrefillTakesAtMostItsShare) {
  Fixture f;
  f.cfg.tbt_slo_s = 10.0;  // the SLO does not bind
  f.cfg.long_prefill_share = 0.4;
  AdaptiveChunkSizer sizer(f.cost, f.cfg);
  EXPECT_EQ(sizer.chunk_tokens(long_request(1 << 20), 0, 16384, {}), 6553);
  // A prompt that fits in one budget is not "long": it takes what is left.
  EXPECT_EQ(sizer.chunk_tokens(long_request(9000), 0, 9000, {}), 9000);
}

TEST(AdaptiveChunkSizer, MoreDecodesInTheStepLeaveLessRoom) {
  Fixture f;
  AdaptiveChunkSizer sizer(f.cost, f.cfg);
  const Request r = long_request(1 << 20);
  EXPECT_GT(sizer.chunk_tokens(r, 100000, 16384, decodes(1, 1000)),
            sizer.chunk_tokens(r, 100000, 16384, decodes(128, 100000)));
}

TEST(AdaptiveChunkSizer, SchedulerUsesTheHookAndChunksShrink) {
  Fixture f;
  AdaptiveChunkSizer sizer(f.cost, f.cfg);
  const int64_t prompt = 300000;
  KVCacheManager kv({static_cast<int32_t>(prompt / 16 + 64), 16, false});
  SchedulerConfig sc;
  sc.max_num_batched_tokens = f.cfg.max_num_batched_tokens;
  sc.max_model_len = prompt + 16;
  Scheduler sched(sc, kv, std::make_unique<FcfsPolicy>());
  sched.set_chunk_sizer(&sizer);
  Request r = long_request(prompt);
  r.max_tokens = 1;
  ASSERT_TRUE(sched.add_request(&r).is_ok());
  std::vector<int64_t> chunks;
  while (r.num_computed_tokens < prompt) {
    StepPlan plan = sched.schedule(0);
    ASSERT_EQ(plan.chunks.size(), 1u);
    chunks.push_back(plan.chunks[0].num_tokens);
    EXPECT_LE(f.cost.step_time_s(step_work(plan)), f.cfg.tbt_slo_s);
    sched.on_step_done(plan);
  }
  ASSERT_GT(chunks.size(), 10u);
  for (size_t i = 1; i + 1 < chunks.size(); ++i)
    EXPECT_LE(chunks[i], chunks[i - 1]);  // the last is a remainder
  EXPECT_GT(chunks.front(), 2 * chunks[chunks.size() - 2]);
}

}  // namespace
}  // namespace longctx
