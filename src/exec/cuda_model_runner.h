// CudaModelRunner: executes a StepPlan on one GPU through CudaDenseModel — the CUDA twin of
// ModelRunner behind the same ModelExecutor interface (built only with CUDA: the CPU build
// never sees this file). The model's paged KV cache is sized by its memory plan
// (--gpu-memory-utilization) and the engine's block pool is made that size, so the block ids
// in the plan index the GPU cache directly.
//
// Sampling: a chunk the engine offers (DeviceSampling) is sampled on the GPU and only its id
// comes back; every other sampling row, and every prompt-logprob row, comes back as fp32
// logits for the engine's CPU Sampler. Greedy without a logprob is the step's cuda::argmax;
// other offered rows are drawn by cuda::sample (seed, offset = output position) when the
// build's kernel works (CudaDenseModel::can_sample), else declined to the host.
//
// Not thread-safe: the engine's thread owns it (and the model's stream).
#pragma once

#include <memory>

#include "exec/model_executor.h"
#include "model/config.h"
#include "model/dense_weights.h"
#include "model_cuda/cuda_dense_model.h"

namespace longctx {

class CudaModelRunner : public ModelExecutor {
 public:
  // Uploads `weights` and plans the memory (opts: the engine's step budget, block size and
  // context limit, --gpu-memory-utilization). max_logit_rows is raised to every token of a
  // step, so a chunk's prompt logprobs fit.
  static Result<std::unique_ptr<CudaModelRunner>> create(const ModelConfig& cfg, const DenseWeights& weights,
                                                         cuda::CudaModelOptions opts);

  Result<StepLogits> run(const StepPlan& plan, const RequestLookup& request,
                         const RequestPredicate& all_positions,
                         const DeviceSamplingLookup& device_sample) override;
  int64_t num_kv_blocks() const override { return model_->num_kv_blocks(); }
  int64_t block_size() const override { return model_->block_size(); }

  const cuda::CudaDenseModel& model() const { return *model_; }
  // Rows sampled on the GPU / returned to the host so far (tests, logs).
  int64_t device_sampled_rows() const { return device_rows_; }
  int64_t host_rows() const { return host_rows_; }

 private:
  explicit CudaModelRunner(std::unique_ptr<cuda::CudaDenseModel> model) : model_(std::move(model)) {}
  bool samples_on_device(const DeviceSampling& d) const;

  std::unique_ptr<cuda::CudaDenseModel> model_;
  int64_t device_rows_ = 0, host_rows_ = 0;
};

}  // namespace longctx
