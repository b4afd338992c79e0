// Scheduling policies decide *order*: which waiting request is admitted first and
// which running request is preempted last. The Scheduler does the rest (budgets,
// allocation, chunking), so FCFS, SRPT, EDF and LRS differ only here.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
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

// "fcfs" → FcfsPolicy; unknown names list the choices.
Result<std::unique_ptr<SchedulingPolicy>> make_policy(const std::string& name);

}  // namespace longctx
