// Discrete-event simulator (DESIGN.md §1, Vidur-style): the real Scheduler and
// KVCacheManager run unchanged; the cost model stands in for exec/. Each step advances
// the clock by the step's predicted time; a chunk that samples appends a token (its time
// is the step's end); a request finishes at its trace output length. Arrivals during a
// step join at the next step boundary; an idle engine jumps to the next arrival.
//
// Token ids are zeros (materialised at arrival, released at finish) and prefix caching
// is off by default: hashing 1M–10M-token prompts would dominate the run and the trace
// has no shared prefixes anyway.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "kv/kv_cache_manager.h"
#include "perf/cost_model.h"
#include "sched/chunk_sizer.h"
#include "sched/policy.h"
#include "sched/scheduler.h"
#include "sim/trace.h"

namespace longctx {

struct SimConfig {
  SchedulerConfig scheduler;
  KVCacheConfig kv{0, 16, false};
  std::string policy = "fcfs";
  DeadlineConfig deadlines;
  std::optional<AdaptiveChunkConfig> adaptive_chunking;  // nullopt: fixed chunks (the budget)
};

struct SimRequest {
  int64_t index = 0;  // position in the trace
  double arrival_s = 0;
  int64_t prompt_tokens = 0, output_tokens = 0;
  bool rejected = false;  // add_request refused it (too long for the model or the cache)
  std::string reject_reason;
  double first_token_s = -1;  // absolute times; -1: not reached
  double finish_s = -1;
  std::vector<double> tbt_s;  // gaps between consecutive output tokens
  int64_t num_preemptions = 0;

  double ttft_s() const { return first_token_s - arrival_s; }
  double e2e_s() const { return finish_s - arrival_s; }
};

struct SimResult {
  std::vector<SimRequest> requests;  // trace order
  double duration_s = 0;             // first arrival (0) to the last finish
  double busy_s = 0;                 // time spent in steps (utilisation = busy / duration)
  int64_t num_steps = 0;
  int64_t num_preemptions = 0;
  std::string policy;
};

// Runs the trace (sorted by arrival) to completion.
Result<SimResult> simulate(const std::vector<TraceRequest>& trace, const SimConfig& cfg,
                           const CostModel& cost);

}  // namespace longctx
