// StepPlan: what one engine step runs — a plain record (STYLE.md §3), produced by the
// Scheduler, executed by exec/, priced by sim/. No tensors.
#pragma once

#include <cstdint>
#include <vector>

#include "sched/request.h"

namespace longctx {

struct ScheduledChunk {
  RequestId request_id = 0;
  int64_t start = 0;       // tokens already computed (the chunk's first position)
  int64_t num_tokens = 0;  // new tokens this step: a prompt, a chunk of one, or 1 (decode)
  bool sample = false;     // the chunk reaches the end of the known tokens: sample the next one
  std::vector<int32_t> block_table;  // the request's KV blocks after allocation
};

struct StepPlan {
  std::vector<ScheduledChunk> chunks;  // running requests first, then newly admitted ones
  int64_t num_batched_tokens = 0;
  std::vector<RequestId> preempted;  // freed this step; they recompute when rescheduled
  bool empty() const { return chunks.empty(); }
};

}  // namespace longctx
