#include "exec/cuda_model_runner.h"

#include <algorithm>

#include "exec/cuda_step_rows.h"

namespace longctx {

Result<std::unique_ptr<CudaModelRunner>> CudaModelRunner::create(const ModelConfig& cfg,
                                                                 const DenseWeights& weights,
                                                                 cuda::CudaModelOptions opts) {
  opts.max_logit_rows = std::max(opts.max_num_batched_tokens, opts.max_num_seqs);
  auto model = cuda::CudaDenseModel::create(cfg, weights, opts);
  if (!model.is_ok()) return model.status();
  return std::unique_ptr<CudaModelRunner>(new CudaModelRunner(std::move(*model)));
}

bool CudaModelRunner::samples_on_device(const DeviceSampling& d) const {
  // Greedy without a logprob is the argmax the step computes anyway; the rest needs
  // cuda::sample (while it is a stub, those requests stay on the CPU Sampler).
  return is_argmax(d) || model_->can_sample();
}

Result<StepLogits> CudaModelRunner::run(const StepPlan& plan, const RequestLookup& request,
                                        const RequestPredicate& all_positions,
                                        const DeviceSamplingLookup& device_sample) {
  CudaStepRows s = build_cuda_step_rows(plan, request, all_positions, device_sample, model_->block_size(),
                                        [this](const DeviceSampling& d) { return samples_on_device(d); });
  auto res = model_->forward_rows(s.batch, s.host_rows, s.needs_draw ? &s.sampling : nullptr);
  if (!res.is_ok()) return res.status();
  device_rows_ += take_device_rows(s, *res);
  host_rows_ += static_cast<int64_t>(s.host_rows.size());
  s.out.logits = std::move(res->logits);
  return std::move(s.out);
}

}  // namespace longctx
