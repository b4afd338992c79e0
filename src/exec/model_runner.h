// ModelRunner: executes a StepPlan — lays the scheduled chunks out as one ForwardBatch
// (token ids, positions, KV slots from the block tables), runs the model once, and
// returns the logits rows the engine asked for. Does, never decides (STYLE.md §3).
#pragma once

#include <functional>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "model/dense_model.h"
#include "model/paged_kv_cache.h"
#include "sched/request.h"
#include "sched/step_plan.h"

namespace longctx {

struct ChunkRows {
  int64_t first_row = -1;  // into StepLogits::logits; -1 when the chunk returns none
  int64_t num_rows = 0;    // all chunk positions (prompt logprobs) or the last one (sampling)
  bool all_positions = false;
};

struct StepLogits {
  Tensor logits;                // f32 [rows, vocab]
  std::vector<ChunkRows> rows;  // one per plan chunk, same order
};

class ModelRunner {
 public:
  ModelRunner(const DenseModel& model, PagedKVCache& cache) : model_(model), cache_(cache) {}

  // token_ids(id) gives the request's known tokens; all_positions(id) asks for the
  // logits of every position of its chunk (prompt logprobs) instead of just the last.
  Result<StepLogits> run(const StepPlan& plan, const std::function<const Request&(RequestId)>& request,
                         const std::function<bool(RequestId)>& all_positions) const;

 private:
  const DenseModel& model_;
  PagedKVCache& cache_;
};

}  // namespace longctx
