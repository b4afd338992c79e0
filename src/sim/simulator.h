// Discrete-event simulator (DESIGN.md §1, Vidur-style): the real Scheduler and
// KVCacheManager run unchanged; the cost model stands in for exec/. Each step advances
// the clock by the step's predicted time; a chunk that samples appends a token (its time
// is the step's end); a request finishes at its trace output length. Arrivals during a
// step join at the next step boundary; an idle engine jumps to the next arrival.
//
// Replicas and pools: a pool is `replicas` copies of one model instance (a layout
// priced by its own cost model, its own KV cache), taking the prompts whose length is in
// its range; within a pool a request goes to the replica with the least outstanding
// work (prompt + output tokens of its unfinished requests; ties: the first). One pool of
// one replica is the plain simulation; a short pool and a long pool is the
// "separate pools" baseline that Medha compares against.
//
// Pipelines: with a cost model of pp stages, step_time_s is one stage's time, so a
// step starts every stage time (a long prefill's chunks pipeline: SPP); a sampled token
// is delivered pp stage times after its step started, and until then the request has
// nothing to compute (the scheduler skips it), so a decode's TBT is the full pipeline.
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
  // What serving a request costs outside the engine's steps (HTTP, tokenization, the
  // stream's first write): a request reaches the scheduler this long after its arrival,
  // and its TTFT includes it. `fidelity.sh` measures it on the real server (--request-overhead).
  double request_overhead_s = 0;
  // The first step after the engine sat idle costs this much more (a real engine waking:
  // cold caches, a descheduled core); fidelity.sh measures it with the same probe
  // (--idle-wake).
  double idle_wake_s = 0;
  // Every step's priced time × this: what the engine's steps cost while a server streams
  // to its clients on the same machine, against the engine-only profile (fidelity.sh
  // measures it with a probe of concurrent streams: --step-scale).
  double step_scale = 1.0;
};

// One pool of identical replicas. kv and max_model_len are per replica.
struct SimPool {
  std::string name = "all";
  int64_t replicas = 1;
  const CostModel* cost = nullptr;  // not owned
  KVCacheConfig kv{0, 16, false};
  int64_t max_model_len = 0;
  int64_t min_prompt_tokens = 0;  // routes prompts in [min, max) here
  int64_t max_prompt_tokens = INT64_MAX;
  Status validate() const;
};

struct SimRequest {
  int64_t index = 0;  // position in the trace
  int64_t pool = 0, replica = 0;  // where it was routed
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
  double busy_s = 0;                 // time spent in steps, summed over replicas
  int64_t num_replicas = 1;          // utilisation = busy / (duration · replicas)
  int64_t num_steps = 0;
  int64_t num_preemptions = 0;
  std::string policy;
};

// Runs the trace (sorted by arrival) to completion on one replica with cfg.kv and
// cfg.scheduler.max_model_len.
Result<SimResult> simulate(const std::vector<TraceRequest>& trace, const SimConfig& cfg,
                           const CostModel& cost);
// The same over pools (cfg's kv and max_model_len are the pools' own). A prompt that no
// pool's range takes is rejected.
Result<SimResult> simulate_pools(const std::vector<TraceRequest>& trace, const SimConfig& cfg,
                                 const std::vector<SimPool>& pools);

}  // namespace longctx
