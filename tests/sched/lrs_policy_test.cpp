// Policy orderings on hand-made queues. With 1 ms per prompt token (PerTokenCostModel)
// every prediction is hand-computable; the queue below orders differently under each
// policy:
//   id  arrival  prompt  prefill  deadline=max(0.5, 1.5·prefill)  slack at t=1   ρ
//   A   0.00     1000    1.00 s   1.5  (abs 1.50)                 −0.5           −0.5
//   B   0.90      100    0.10 s   0.5  (abs 1.40)                  0.3            3
//   C   0.95       10    0.01 s   0.5  (abs 1.45)                  0.44          44
//   D   0.00    10000   10.0  s  15    (abs 15.0)                  4              0.4
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "sched/policy.h"
#include "sched/test_cost_models.h"

namespace longctx {
namespace {

struct Queue {
  std::vector<std::unique_ptr<Request>> owned;
  Request* add(RequestId id, double arrival, int64_t prompt, int64_t computed = 0, int64_t generated = 0) {
    auto r = std::make_unique<Request>();
    r->id = id;
    r->arrival_time_s = arrival;
    r->token_ids.assign(static_cast<size_t>(prompt + generated), 0);
    r->num_prompt_tokens = prompt;
    r->num_computed_tokens = computed;
    owned.push_back(std::move(r));
    return owned.back().get();
  }
  std::vector<Request*> all() const {
    std::vector<Request*> v;
    for (const auto& r : owned) v.push_back(r.get());
    return v;
  }
};

std::string ids(const std::vector<Request*>& v) {
  std::string s;
  for (const Request* r : v) s += static_cast<char>('A' + r->id);
  return s;
}

Queue hand_made() {
  Queue q;
  q.add(0, 0.00, 1000);   // A
  q.add(1, 0.90, 100);    // B
  q.add(2, 0.95, 10);     // C
  q.add(3, 0.00, 10000);  // D
  return q;
}

TEST(LrsPolicy, RelativeSlackByHand) {
  testing::PerTokenCostModel cost;
  LrsPolicy lrs(cost, DeadlineConfig{});
  Queue q = hand_made();
  EXPECT_NEAR(lrs.relative_slack(*q.owned[0], 1.0), -0.5, 1e-12);
  EXPECT_NEAR(lrs.relative_slack(*q.owned[1], 1.0), 3.0, 1e-12);
  EXPECT_NEAR(lrs.relative_slack(*q.owned[2], 1.0), 44.0, 1e-9);
  EXPECT_NEAR(lrs.relative_slack(*q.owned[3], 1.0), 0.4, 1e-12);
}

TEST(LrsPolicy, LeastRelativeSlackFirst) {
  testing::PerTokenCostModel cost;
  auto p = make_policy("lrs", &cost).value();
  Queue q = hand_made();
  auto v = q.all();
  p->order_waiting(v, 1.0);
  EXPECT_EQ(ids(v), "ADBC");
}

TEST(LrsPolicy, ProgressRaisesSlackOfALongPrefill) {
  // E arrives at t = 1 with 400 tokens: prefill 0.4 s, deadline max(0.5, 0.6) = 0.6,
  // slack 0.2, ρ = 0.5. Untouched, D (ρ 0.4) goes first; half done (remaining 5 s,
  // slack 15 − 1 − 5 = 9, ρ = 0.9) it yields to E.
  testing::PerTokenCostModel cost;
  LrsPolicy lrs(cost, DeadlineConfig{});
  Queue q;
  Request* d = q.add(3, 0.0, 10000);
  Request* e = q.add(4, 1.0, 400);
  EXPECT_NEAR(lrs.relative_slack(*e, 1.0), 0.5, 1e-12);
  auto v = q.all();
  lrs.order_waiting(v, 1.0);
  EXPECT_EQ(ids(v), "DE");
  d->num_computed_tokens = 5000;
  EXPECT_NEAR(lrs.relative_slack(*d, 1.0), 0.9, 1e-12);
  lrs.order_running(v, 1.0);
  EXPECT_EQ(ids(v), "ED");
}

TEST(LrsPolicy, DecodesFirstThenPrefillsBySlack) {
  testing::PerTokenCostModel cost;
  auto p = make_policy("lrs", &cost).value();
  Queue q = hand_made();
  q.add(4, 0.5, 50, /*computed=*/50, /*generated=*/1);  // E: decoding
  q.add(5, 0.1, 50, /*computed=*/50, /*generated=*/3);  // F: decoding, arrived earlier
  auto v = q.all();
  p->order_running(v, 1.0);
  EXPECT_EQ(ids(v), "FEADBC");
}

TEST(PerTokenDeadlines, AllowanceGrowsWithThePrompt) {
  DeadlineConfig d;
  d.ttft_slo_s = 0.2;
  d.ttft_slo_per_token_s = 1e-4;
  d.prefill_factor = 0;
  EXPECT_DOUBLE_EQ(d.deadline_s(1000, 99.0), 0.2 + 0.1);
  EXPECT_DOUBLE_EQ(d.deadline_s(1000000, 99.0), 0.2 + 100.0);
  EXPECT_DOUBLE_EQ(DeadlineConfig{}.deadline_s(10, 2.0), 3.0);  // paper: max(1.5 × 2 s, 0.5 s)
  EXPECT_DOUBLE_EQ(DeadlineConfig{}.deadline_s(10, 0.1), 0.5);
}

TEST(MakePolicy, NamesAndErrors) {
  EXPECT_STREQ(make_policy("fcfs").value()->name(), "fcfs");  // existing callers: no cost model
  EXPECT_STREQ(make_policy("srpt").value()->name(), "srpt");
  auto lrs = make_policy("lrs");
  ASSERT_FALSE(lrs.is_ok());
  EXPECT_NE(lrs.status().message().find("cost model"), std::string::npos);
  auto bad = make_policy("lifo");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("fcfs, srpt, edf, lrs"), std::string::npos);
  testing::PerTokenCostModel cost;
  DeadlineConfig neg;
  neg.ttft_slo_s = -1;
  EXPECT_FALSE(make_policy("edf", &cost, neg).is_ok());
}

TEST(FcfsPolicy, ArrivalOrderOnTheSameQueue) {
  auto p = make_policy("fcfs").value();
  Queue q = hand_made();
  auto v = q.all();
  p->order_waiting(v, 1.0);
  EXPECT_EQ(ids(v), "ADBC");  // A and D both at 0: by id
}

}  // namespace
}  // namespace longctx
