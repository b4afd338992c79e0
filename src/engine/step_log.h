// StepLog: one JSON line per engine step (`serve --step-log FILE`, `generate --step-log`)
// — when it started on the engine's clock, how long it took, and what it ran:
//   {"t": 12.503, "dur": 0.0412, "chunks": [[id, start, num_tokens], ...], "preempted": [id, ...]}
// `start` is the chunk's context (tokens already in the KV cache), so a line is exactly the
// input the cost model prices (perf/cost_model.h ChunkWork) next to the measured time:
// what bench/step_fidelity.py compares, step by step, to find where a prediction misses.
#pragma once

#include <cstdio>
#include <memory>
#include <string>

#include "core/status.h"
#include "sched/step_plan.h"

namespace longctx {

class StepLog {
 public:
  // Creates (truncates) the file; InvalidArgument naming the path when it cannot.
  static Result<std::unique_ptr<StepLog>> open(const std::string& path);
  ~StepLog();
  StepLog(const StepLog&) = delete;
  StepLog& operator=(const StepLog&) = delete;

  // Written and flushed at once: a server stopped by a signal keeps every finished step.
  void record(const StepPlan& plan, double start_s, double seconds);

 private:
  explicit StepLog(std::FILE* f) : f_(f) {}
  std::FILE* f_;
};

}  // namespace longctx
