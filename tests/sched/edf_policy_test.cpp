#include <gtest/gtest.h>

#include <vector>

#include "sched/policy.h"
#include "sched/test_cost_models.h"

namespace longctx {
namespace {

Request make(RequestId id, double arrival, int64_t prompt) {
  Request r;
  r.id = id;
  r.arrival_time_s = arrival;
  r.token_ids.assign(static_cast<size_t>(prompt), 0);
  r.num_prompt_tokens = prompt;
  return r;
}

TEST(EdfPolicy, EarliestAbsoluteDeadlineFirst) {
  // Absolute deadlines (1 ms/token, max(0.5, 1.5 × prefill)): 1.5, 1.4, 1.45, 15.
  testing::PerTokenCostModel cost;
  auto p = make_policy("edf", &cost).value();
  std::vector<Request> rs = {make(0, 0.0, 1000), make(1, 0.9, 100), make(2, 0.95, 10), make(3, 0.0, 10000)};
  std::vector<Request*> v = {&rs[0], &rs[1], &rs[2], &rs[3]};
  p->order_waiting(v, 1.0);
  EXPECT_EQ(v[0]->id, 1);
  EXPECT_EQ(v[1]->id, 2);
  EXPECT_EQ(v[2]->id, 0);
  EXPECT_EQ(v[3]->id, 3);
}

TEST(EdfPolicy, PerTokenAllowanceOrdersByLength) {
  // Base 0.1 s + 1 ms per token, no prefill factor: same arrival → shorter first.
  testing::PerTokenCostModel cost;
  DeadlineConfig d;
  d.ttft_slo_s = 0.1;
  d.ttft_slo_per_token_s = 1e-3;
  d.prefill_factor = 0;
  EdfPolicy p(cost, d);
  std::vector<Request> rs = {make(0, 0.0, 5000), make(1, 0.0, 50), make(2, 4.0, 50)};
  std::vector<Request*> v = {&rs[0], &rs[1], &rs[2]};
  p.order_waiting(v, 4.0);
  EXPECT_EQ(v[0]->id, 1);  // 0.15
  EXPECT_EQ(v[1]->id, 2);  // 4.15
  EXPECT_EQ(v[2]->id, 0);  // 5.1
}

}  // namespace
}  // namespace longctx
