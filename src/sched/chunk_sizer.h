// Chunk sizing: how many prompt tokens a prefilling request computes this step. The
// Scheduler asks its ChunkSizer (when one is set) for every chunk of more than one
// token; without one, a chunk is what the token budget leaves (fixed chunks).
//
// AdaptiveChunkSizer is Medha's adaptive chunking (DESIGN.md §4): the largest chunk
// whose predicted step time — with the chunks already in the step — fits the TBT SLO,
// found by binary search over the cost model (monotone in the chunk size). Later chunks
// attend over a longer prefix, cost more per token, and so get smaller; a floor
// (--min-chunk) keeps long prefills moving, and a long prefill takes at most a share of
// the token budget so decodes and short prefills always get the rest.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "perf/cost_model.h"
#include "sched/request.h"
#include "sched/step_plan.h"

namespace longctx {

// The cost model's view of a plan: one ChunkWork per scheduled chunk.
std::vector<ChunkWork> step_work(const StepPlan& plan);

class ChunkSizer {
 public:
  virtual ~ChunkSizer() = default;
  // Tokens of `r` to compute now, starting at `start`, in [1, max_tokens] (max_tokens:
  // its uncomputed tokens within the step's remaining budget), given the chunks
  // already in `plan`.
  virtual int64_t chunk_tokens(const Request& r, int64_t start, int64_t max_tokens,
                               const StepPlan& plan) const = 0;
};

struct AdaptiveChunkConfig {
  double tbt_slo_s = 0.1;                 // --tbt-slo: predicted step time to stay within
  int64_t min_chunk = 256;                // --min-chunk: never smaller (unless fewer tokens are left)
  double long_prefill_share = 0.4;        // --long-prefill-share: of max_num_batched_tokens
  int64_t max_num_batched_tokens = 2048;  // the scheduler's token budget
  // Prompts longer than this are "long" (0: longer than max_num_batched_tokens, i.e. they
  // cannot finish in one step).
  int64_t long_prefill_threshold = 0;
  Status validate() const;
};

class AdaptiveChunkSizer final : public ChunkSizer {
 public:
  AdaptiveChunkSizer(const CostModel& cost, const AdaptiveChunkConfig& cfg) : cost_(cost), cfg_(cfg) {}
  int64_t chunk_tokens(const Request& r, int64_t start, int64_t max_tokens,
                       const StepPlan& plan) const override;
  const AdaptiveChunkConfig& config() const { return cfg_; }

 private:
  const CostModel& cost_;
  AdaptiveChunkConfig cfg_;
};

}  // namespace longctx
