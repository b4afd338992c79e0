// Scheduling policies decide *order*: which waiting request is admitted first and
// which running request is preempted last. The Scheduler does the rest (budgets,
// allocation, chunking), so FCFS, SRPT, EDF and LRS differ only here.
//
// SRPT, EDF and LRS put decoding requests (prefill done) first in the running order, in
// arrival order: their tokens are the ones a TBT SLO protects, and a chunk sizer then
// sees them in the step before it sizes a prefill chunk. Prefilling requests follow by
// the policy's key; ties by arrival, then id.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "perf/cost_model.h"
#include "sched/request.h"

namespace longctx {

class SchedulingPolicy {
 public:
  virtual ~SchedulingPolicy() = default;
  virtual const char* name() const = 0;
  // Sorts by priority, most important first. Running requests are preempted from the
  // back; waiting requests are admitted from the front.
  virtual void order_running(std::vector<Request*>& running, double now_s) const = 0;
  virtual void order_waiting(std::vector<Request*>& waiting, double now_s) const = 0;
};

// First come, first served (as vLLM): arrival order, ties by id. A preempted request
// keeps its arrival time, so it goes back to the front of the queue.
class FcfsPolicy final : public SchedulingPolicy {
 public:
  const char* name() const override { return "fcfs"; }
  void order_running(std::vector<Request*>& running, double now_s) const override;
  void order_waiting(std::vector<Request*>& waiting, double now_s) const override;
};

// TTFT deadlines that grow with the prompt (Medha §4): a 1M-token prompt is allowed more
// time than a 1K one. deadline = max(ttft_slo_s + ttft_slo_per_token_s × prompt tokens,
// prefill_factor × predicted prefill time alone). The defaults give the paper's
// max(1.5 × predicted prefill, 0.5 s).
struct DeadlineConfig {
  double ttft_slo_s = 0.5;            // --ttft-slo: the base TTFT deadline
  double ttft_slo_per_token_s = 0.0;  // --ttft-slo-per-token: allowance per prompt token
  double prefill_factor = 1.5;        // deadline >= this × predicted prefill time
  double deadline_s(int64_t prompt_tokens, double predicted_prefill_s) const;
  Status validate() const;
};

// Shortest remaining prefill first: the predicted time of the uncomputed prompt (or its
// token count when no cost model is given). Starves long prompts under load.
class SrptPolicy final : public SchedulingPolicy {
 public:
  explicit SrptPolicy(const CostModel* cost) : cost_(cost) {}
  const char* name() const override { return "srpt"; }
  void order_running(std::vector<Request*>& running, double now_s) const override;
  void order_waiting(std::vector<Request*>& waiting, double now_s) const override;

 private:
  const CostModel* cost_;
};

// Earliest TTFT deadline first: arrival + DeadlineConfig::deadline_s.
class EdfPolicy final : public SchedulingPolicy {
 public:
  EdfPolicy(const CostModel& cost, const DeadlineConfig& deadlines) : cost_(cost), deadlines_(deadlines) {}
  const char* name() const override { return "edf"; }
  void order_running(std::vector<Request*>& running, double now_s) const override;
  void order_waiting(std::vector<Request*>& waiting, double now_s) const override;

 private:
  const CostModel& cost_;
  DeadlineConfig deadlines_;
};

// Medha's least relative slack: slack = arrival + deadline − now − predicted remaining
// prefill; ρ = slack ÷ predicted total prefill; least ρ first. Dividing by the total
// prefill makes a 1M prompt with 10 s of slack as urgent as a 1K prompt with 10 ms.
class LrsPolicy final : public SchedulingPolicy {
 public:
  LrsPolicy(const CostModel& cost, const DeadlineConfig& deadlines) : cost_(cost), deadlines_(deadlines) {}
  const char* name() const override { return "lrs"; }
  void order_running(std::vector<Request*>& running, double now_s) const override;
  void order_waiting(std::vector<Request*>& waiting, double now_s) const override;
  // ρ of one request at `now_s` (exposed for tests and the simulator's reports).
  double relative_slack(const Request& r, double now_s) const;

 private:
  const CostModel& cost_;
  DeadlineConfig deadlines_;
};

// "fcfs" | "srpt" | "edf" | "lrs". EDF and LRS need `cost` for their predictions;
// unknown names list the choices.
Result<std::unique_ptr<SchedulingPolicy>> make_policy(const std::string& name,
                                                      const CostModel* cost = nullptr,
                                                      const DeadlineConfig& deadlines = {});

}  // namespace longctx
