#include <algorithm>

#include "sched/policy.h"

namespace longctx {
namespace {

bool arrived_before(const Request* a, const Request* b) {
  return a->arrival_time_s != b->arrival_time_s ? a->arrival_time_s < b->arrival_time_s : a->id < b->id;
}

}  // namespace

void FcfsPolicy::order_running(std::vector<Request*>& running, double) const {
  std::stable_sort(running.begin(), running.end(), arrived_before);
}

void FcfsPolicy::order_waiting(std::vector<Request*>& waiting, double) const {
  std::stable_sort(waiting.begin(), waiting.end(), arrived_before);
}

}  // namespace longctx
