#include <algorithm>

#include "sched/policy.h"
#include "sched/priority_order.h"

namespace longctx {

double LrsPolicy::relative_slack(const Request& r, double now_s) const {
  // A request preempted after sampling recomputes its outputs too: count them.
  const int64_t end = std::max(r.num_prompt_tokens, r.num_tokens() - 1);
  const double total = cost_.prefill_time_s(0, end);
  const double left = cost_.prefill_time_s(r.num_computed_tokens, end);
  const double deadline =
      deadlines_.deadline_s(r.num_prompt_tokens, cost_.prefill_time_s(0, r.num_prompt_tokens));
  const double slack = r.arrival_time_s + deadline - now_s - left;
  // total > 0 for any real model; the guard keeps a zero-cost model ordered by slack.
  return total > 0 ? slack / total : slack;
}

void LrsPolicy::order_running(std::vector<Request*>& running, double now_s) const {
  order_waiting(running, now_s);
}

void LrsPolicy::order_waiting(std::vector<Request*>& waiting, double now_s) const {
  detail::order_by_key(waiting, [this, now_s](const Request& r) { return relative_slack(r, now_s); });
}

}  // namespace longctx
