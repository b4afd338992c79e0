#include "sched/policy.h"
#include "sched/priority_order.h"

namespace longctx {
namespace {

double remaining(const CostModel* cost, const Request& r) {
  const int64_t end = std::max(r.num_prompt_tokens, r.num_tokens() - 1);
  return cost ? cost->prefill_time_s(r.num_computed_tokens, end)
              : static_cast<double>(end - r.num_computed_tokens);
}

}  // namespace

void SrptPolicy::order_running(std::vector<Request*>& running, double) const {
  detail::order_by_key(running, [this](const Request& r) { return remaining(cost_, r); });
}

void SrptPolicy::order_waiting(std::vector<Request*>& waiting, double) const {
  detail::order_by_key(waiting, [this](const Request& r) { return remaining(cost_, r); });
}

}  // namespace longctx
