#include "sched/policy.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

namespace longctx {

double DeadlineConfig::deadline_s(int64_t prompt_tokens, double predicted_prefill_s) const {
  return std::max(ttft_slo_s + ttft_slo_per_token_s * static_cast<double>(prompt_tokens),
                  prefill_factor * predicted_prefill_s);
}

Status DeadlineConfig::validate() const {
  if (!(ttft_slo_s >= 0) || !std::isfinite(ttft_slo_s))
    return invalid_argument("--ttft-slo must be a finite number of seconds >= 0, got " +
                            std::to_string(ttft_slo_s));
  if (!(ttft_slo_per_token_s >= 0))
    return invalid_argument("--ttft-slo-per-token must be >= 0, got " + std::to_string(ttft_slo_per_token_s));
  if (!(prefill_factor >= 0)) return invalid_argument("the deadline's prefill factor must be >= 0");
  return Status::ok();
}

Result<std::unique_ptr<SchedulingPolicy>> make_policy(const std::string& name, const CostModel* cost,
                                                      const DeadlineConfig& deadlines) {
  using Ptr = std::unique_ptr<SchedulingPolicy>;
  if (name == "fcfs") return Ptr(std::make_unique<FcfsPolicy>());
  if (name == "srpt") return Ptr(std::make_unique<SrptPolicy>(cost));
  if (name == "edf" || name == "lrs") {
    if (!cost)
      return invalid_argument("--policy " + name +
                              " needs a cost model for its prefill-time predictions (none was given)");
    if (Status st = deadlines.validate(); !st.is_ok()) return st;
    if (name == "edf") return Ptr(std::make_unique<EdfPolicy>(*cost, deadlines));
    return Ptr(std::make_unique<LrsPolicy>(*cost, deadlines));
  }
  return invalid_argument("--policy " + name +
                          ": unknown scheduling policy (available: fcfs, srpt, edf, lrs)");
}

}  // namespace longctx
