// The shared shape of the key-based policies (SRPT, EDF, LRS): decodes first in arrival
// order, then prefilling requests by ascending key; ties by arrival, then id. Keys are
// computed once per request per call (they may query the cost model), not per compare.
#pragma once

#include <algorithm>
#include <utility>
#include <vector>

#include "sched/request.h"

namespace longctx::detail {

template <typename KeyFn>
void order_by_key(std::vector<Request*>& reqs, KeyFn key) {
  struct Entry {
    bool prefilling;
    double key;
    Request* r;
  };
  std::vector<Entry> e;
  e.reserve(reqs.size());
  for (Request* r : reqs) {
    const bool prefilling = r->is_prefilling();
    e.push_back({prefilling, prefilling ? static_cast<double>(key(*r)) : 0.0, r});
  }
  std::sort(e.begin(), e.end(), [](const Entry& a, const Entry& b) {
    if (a.prefilling != b.prefilling) return !a.prefilling;
    if (a.key != b.key) return a.key < b.key;
    if (a.r->arrival_time_s != b.r->arrival_time_s) return a.r->arrival_time_s < b.r->arrival_time_s;
    return a.r->id < b.r->id;
  });
  for (size_t i = 0; i < e.size(); ++i) reqs[i] = e[i].r;
}

}  // namespace longctx::detail
