// The GPU executors' view of one StepPlan: the ForwardBatch every rank runs (the engine's
// global block ids), and which logit rows the device samples and which the host needs —
// built the same way for one GPU (CudaModelRunner) and for the ranks of a layout
// (CudaParallelRunner). Built only with CUDA, like both runners.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "exec/model_executor.h"
#include "model/forward_batch.h"
#include "model_cuda/cuda_dense_model.h"

namespace longctx {

struct CudaStepRows {
  ForwardBatch batch;
  StepLogits out;                           // rows filled; logits come from the model
  std::vector<int64_t> host_rows;           // indices into batch.logit_rows the host needs
  std::vector<int64_t> device_rows;         // per chunk: its logit row when sampled on the GPU, else -1
  std::vector<cuda::SamplingRow> sampling;  // per logit row (greedy parameters where unused)
  bool needs_draw = false;                  // some device row needs cuda::sample, not the argmax
};

// Greedy without a logprob: the argmax every GPU step computes anyway (no cuda::sample).
inline bool is_argmax(const DeviceSampling& d) { return d.temperature == 0.0f && !d.logprob; }

// `samples_on_device`: whether the GPU can draw a request's token with these parameters.
CudaStepRows build_cuda_step_rows(const StepPlan& plan, const RequestLookup& request,
                                  const RequestPredicate& all_positions,
                                  const DeviceSamplingLookup& device_sample, int64_t block_size,
                                  const std::function<bool(const DeviceSampling&)>& samples_on_device);

// Copies the device-drawn ids (and logprobs) of `res` into the chunks' rows; returns how
// many rows were drawn on the device.
int64_t take_device_rows(CudaStepRows& s, const cuda::CudaDenseModel::RowsOut& res);

}  // namespace longctx
