#include "sched/policy.h"
#include "sched/priority_order.h"

namespace longctx {

void EdfPolicy::order_running(std::vector<Request*>& running, double now_s) const {
  order_waiting(running, now_s);
}

void EdfPolicy::order_waiting(std::vector<Request*>& waiting, double) const {
  detail::order_by_key(waiting, [this](const Request& r) {
    return r.arrival_time_s +
           deadlines_.deadline_s(r.num_prompt_tokens, cost_.prefill_time_s(0, r.num_prompt_tokens));
  });
}

}  // namespace longctx
