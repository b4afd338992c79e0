// ModelRunner: executes a StepPlan on the CPU — lays the scheduled chunks out as one
// ForwardBatch (token ids, positions, KV slots from the block tables), runs the model once,
// and returns the logits rows the engine asked for. Does, never decides (STYLE.md §3).
#pragma once

#include "exec/model_executor.h"
#include "model/dense_model.h"
#include "model/paged_kv_cache.h"

namespace longctx {

class ModelRunner : public ModelExecutor {
 public:
  ModelRunner(const DenseModel& model, PagedKVCache& cache) : model_(model), cache_(cache) {}

  // Every sampling row comes back as logits (device_sample is not consulted: the engine's
  // CPU Sampler samples them).
  Result<StepLogits> run(const StepPlan& plan, const RequestLookup& request,
                         const RequestPredicate& all_positions,
                         const DeviceSamplingLookup& device_sample) override;
  int64_t num_kv_blocks() const override { return cache_.shape().num_blocks; }
  int64_t block_size() const override { return cache_.shape().block_size; }

 private:
  const DenseModel& model_;
  PagedKVCache& cache_;
};

}  // namespace longctx
