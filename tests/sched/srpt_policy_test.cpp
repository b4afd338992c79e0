#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "sched/policy.h"
#include "sched/test_cost_models.h"

namespace longctx {
namespace {

Request make(RequestId id, double arrival, int64_t prompt, int64_t computed) {
  Request r;
  r.id = id;
  r.arrival_time_s = arrival;
  r.token_ids.assign(static_cast<size_t>(prompt), 0);
  r.num_prompt_tokens = prompt;
  r.num_computed_tokens = computed;
  return r;
}

TEST(SrptPolicy, ShortestRemainingPrefillFirst) {
  // Remaining: 0 → 1000, 1 → 100, 2 → 10, 3 → 9000 of 10000 (1000 done: still longest).
  std::vector<Request> rs = {make(0, 0.0, 1000, 0), make(1, 0.9, 100, 0), make(2, 0.95, 10, 0),
                             make(3, 0.0, 10000, 1000)};
  const testing::PerTokenCostModel per_token;
  for (const CostModel* cost :
       {static_cast<const CostModel*>(nullptr), static_cast<const CostModel*>(&per_token)}) {
    SrptPolicy p(cost);
    std::vector<Request*> v;
    for (auto& r : rs) v.push_back(&r);
    p.order_waiting(v, 1.0);
    ASSERT_EQ(v.size(), 4u);
    EXPECT_EQ(v[0]->id, 2);
    EXPECT_EQ(v[1]->id, 1);
    EXPECT_EQ(v[2]->id, 0);
    EXPECT_EQ(v[3]->id, 3);
  }
}

TEST(SrptPolicy, PartlyDonePrefillOvertakes) {
  // 900 of 1000 done leaves 100: ties with a fresh 100-token prompt, arrival breaks it.
  std::vector<Request> rs = {make(0, 0.5, 100, 0), make(1, 0.0, 1000, 900), make(2, 0.2, 150, 0)};
  SrptPolicy p(nullptr);
  std::vector<Request*> v = {&rs[0], &rs[1], &rs[2]};
  p.order_running(v, 1.0);
  EXPECT_EQ(v[0]->id, 1);
  EXPECT_EQ(v[1]->id, 0);
  EXPECT_EQ(v[2]->id, 2);
}

}  // namespace
}  // namespace longctx
