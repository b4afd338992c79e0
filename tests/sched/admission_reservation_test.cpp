// Admission reserves a prompt's whole KV: long prefills that cannot all be resident must
// not start together and evict each other forever (the 10M-on-32-GPUs livelock of
// docs/scheduling.md, shrunk to three 1,000-token prompts in a 1,600-token cache).
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <vector>

#include "sched/chunk_sizer.h"
#include "sched/scheduler.h"
#include "sched/test_cost_models.h"

namespace longctx {
namespace {

// Adaptive chunking in miniature: the first chunk of a step takes most of the step's
// time (the TBT SLO), later ones get the floor. Under LRS the least-advanced prefill
// runs first, so it gets the big chunk and catches up with the others: all long prefills
// advance together, which is what filled the cache in the 10M experiment.
class FirstChunkBig final : public ChunkSizer {
 public:
  int64_t chunk_tokens(const Request&, int64_t, int64_t max_tokens, const StepPlan& plan) const override {
    return std::min<int64_t>(plan.chunks.empty() ? 200 : 20, max_tokens);
  }
};

struct Harness {
  testing::PerTokenCostModel cost;
  KVCacheManager kv;
  Scheduler sched;
  FirstChunkBig sizer;
  std::map<RequestId, std::unique_ptr<Request>> reqs;
  int64_t preemptions = 0;

  // 101 blocks of 16 tokens (block 0 is the null block): 1,600 tokens, room for one
  // 1,000-token prompt but not two.
  Harness(std::unique_ptr<SchedulingPolicy> policy)
      : kv({101, 16, false}), sched(config(), kv, std::move(policy)) {
    sched.set_chunk_sizer(&sizer);
  }
  static SchedulerConfig config() {
    SchedulerConfig c;
    c.max_num_batched_tokens = 300;  // room for every chunk the sizer asks for
    c.max_num_seqs = 16;
    c.max_model_len = 4096;
    return c;
  }
  void add(RequestId id, int64_t prompt, int64_t max_tokens, double arrival) {
    auto r = std::make_unique<Request>();
    r->id = id;
    // Distinct tokens per request: no prefix-cache sharing between them.
    for (int64_t i = 0; i < prompt; ++i) r->token_ids.push_back(static_cast<int32_t>(id * 10000 + i));
    r->num_prompt_tokens = prompt;
    r->max_tokens = max_tokens;
    r->arrival_time_s = arrival;
    ASSERT_TRUE(sched.add_request(r.get()).is_ok());
    reqs[id] = std::move(r);
  }
  // Steps until every request finished or `max_steps` ran; returns the steps taken.
  // Time advances by the cost model's step time, which LRS's slack depends on.
  int64_t run(int64_t max_steps, std::map<RequestId, int64_t>* first_token_step = nullptr) {
    double now = 1.0;
    int64_t steps = 0;
    while (sched.has_unfinished() && steps < max_steps) {
      StepPlan plan = sched.schedule(now);
      preemptions += static_cast<int64_t>(plan.preempted.size());
      now += cost.step_time_s(step_work(plan)) + 1e-3;
      ++steps;
      sched.on_step_done(plan);
      for (const ScheduledChunk& c : plan.chunks) {
        if (!c.sample) continue;
        Request& r = *reqs.at(c.request_id);
        if (first_token_step && r.num_output_tokens() == 0) first_token_step->emplace(r.id, steps);
        r.token_ids.push_back(1);
        if (r.num_output_tokens() >= r.max_tokens) sched.finish(r.id);
      }
      EXPECT_TRUE(kv.check_invariants());
    }
    return steps;
  }
};

std::unique_ptr<SchedulingPolicy> lrs(const CostModel& cost) {
  return std::make_unique<LrsPolicy>(cost, DeadlineConfig{});
}

TEST(AdmissionReservation, LongPrefillsThatCannotAllBeResidentFinishUnderLrs) {
  testing::PerTokenCostModel cost;
  Harness run(lrs(cost));
  for (RequestId id = 1; id <= 3; ++id) run.add(id, 1000, 4, 0.01 * static_cast<double>(id));
  // Each prompt alone needs 5 steps of 200 tokens; 3 × (5 + 4) plus slack is plenty.
  // Before the reservation, all three started, filled the cache and preempted each
  // other without end: this ran out of steps with preemptions in the thousands.
  const int64_t steps = run.run(2000);
  EXPECT_FALSE(run.sched.has_unfinished()) << "livelock: " << run.preemptions << " preemptions in " << steps
                                           << " steps";
  EXPECT_LT(steps, 200);
  EXPECT_EQ(run.preemptions, 0);  // only one long prompt is resident at a time
}

TEST(AdmissionReservation, ShortRequestsAreNotBlockedBehindALongOneThatDoesNotFit) {
  testing::PerTokenCostModel cost;
  Harness run(std::make_unique<FcfsPolicy>());
  run.add(1, 1000, 4, 0.0);  // running: reserves 63 of the 100 blocks
  run.add(2, 1000, 4, 0.1);  // waits: its 63 blocks do not fit beside the first
  run.add(3, 50, 2, 0.2);    // fits beside the first: admitted although it arrived last
  std::map<RequestId, int64_t> first;
  run.run(2000, &first);
  EXPECT_FALSE(run.sched.has_unfinished());
  ASSERT_EQ(first.size(), 3u);
  EXPECT_LT(first.at(3), first.at(1));  // the short one's first token comes first
  EXPECT_LT(first.at(1), first.at(2));
  EXPECT_EQ(run.preemptions, 0);
}

TEST(AdmissionReservation, ReservedBlocksCountAsUsedForAdmission) {
  testing::PerTokenCostModel cost;
  Harness run(std::make_unique<FcfsPolicy>());
  run.add(1, 1000, 4, 0.0);
  run.add(2, 700, 4, 0.1);  // 44 blocks: free after step 1 (87 free), not beside 63 reserved
  StepPlan plan = run.sched.schedule(1.0);
  ASSERT_EQ(plan.chunks.size(), 1u);  // only the first prompt's chunk
  EXPECT_EQ(plan.chunks[0].request_id, 1);
  EXPECT_EQ(run.sched.num_waiting(), 1);
  run.sched.on_step_done(plan);
  plan = run.sched.schedule(1.1);
  ASSERT_EQ(plan.chunks.size(), 1u);
  EXPECT_EQ(run.sched.num_waiting(), 1);
}

}  // namespace
}  // namespace longctx
