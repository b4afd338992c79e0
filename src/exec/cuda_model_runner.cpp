#include "exec/cuda_model_runner.h"

#include <algorithm>

#include "model/forward_batch.h"

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
  ForwardBatch batch;
  StepLogits out;
  std::vector<int64_t> host_rows;           // indices into batch.logit_rows the host needs
  std::vector<int64_t> device_rows;         // per chunk: its logit row when sampled here, else -1
  std::vector<cuda::SamplingRow> sampling;  // per logit row, when some device row needs a draw
  bool needs_draw = false;
  const int64_t block_size = model_->block_size();
  for (const ScheduledChunk& c : plan.chunks) {
    const Request& r = request(c.request_id);
    const int64_t first_token = batch.num_tokens();
    batch.add_sequence(r.token_ids.data() + c.start, c.num_tokens, c.start, c.block_table, block_size, false);
    ChunkRows rows;
    int64_t device_row = -1;
    if (all_positions(c.request_id)) {
      rows.first_row = static_cast<int64_t>(host_rows.size());
      rows.num_rows = c.num_tokens;
      rows.all_positions = true;
      for (int64_t i = 0; i < c.num_tokens; ++i) {
        host_rows.push_back(static_cast<int64_t>(batch.logit_rows.size()));
        batch.logit_rows.push_back(first_token + i);
      }
    } else if (c.sample) {
      const std::optional<DeviceSampling> ds = device_sample ? device_sample(c.request_id) : std::nullopt;
      if (ds && samples_on_device(*ds)) {
        device_row = static_cast<int64_t>(batch.logit_rows.size());
        rows.sampled_on_device = true;
        needs_draw = needs_draw || !is_argmax(*ds);
        sampling.resize(batch.logit_rows.size() + 1, cuda::SamplingRow{0, -1, 1, 0, 0, 0});
        sampling.back() = {ds->temperature, ds->top_k, ds->top_p, ds->min_p, ds->seed, ds->offset};
      } else {
        rows.first_row = static_cast<int64_t>(host_rows.size());
        rows.num_rows = 1;
        host_rows.push_back(static_cast<int64_t>(batch.logit_rows.size()));
      }
      batch.logit_rows.push_back(first_token + c.num_tokens - 1);
    }
    device_rows.push_back(device_row);
    out.rows.push_back(rows);
  }
  // Rows not drawn here (host rows, prompt rows) get greedy parameters: their ids are unused.
  sampling.resize(batch.logit_rows.size(), cuda::SamplingRow{0, -1, 1, 0, 0, 0});
  auto res = model_->forward_rows(batch, host_rows, needs_draw ? &sampling : nullptr);
  if (!res.is_ok()) return res.status();
  for (size_t i = 0; i < out.rows.size(); ++i) {
    if (device_rows[i] < 0) continue;
    out.rows[i].token = res->tokens[static_cast<size_t>(device_rows[i])];
    if (!res->logprobs.empty()) out.rows[i].logprob = res->logprobs[static_cast<size_t>(device_rows[i])];
    ++device_rows_;
  }
  host_rows_ += static_cast<int64_t>(host_rows.size());
  out.logits = std::move(res->logits);
  return out;
}

}  // namespace longctx
