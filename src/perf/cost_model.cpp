#include "perf/cost_model.h"

#include <algorithm>
#include <cmath>

namespace longctx {

RooflineCostModel::RooflineCostModel(const ModelShape& model, const HardwareProfile& hw, int64_t num_gpus)
    : model_(model), hw_(hw), num_gpus_(std::max<int64_t>(1, num_gpus)) {}

double RooflineCostModel::kv_replication() const {
  const double kv_heads = static_cast<double>(std::max<int64_t>(1, model_.num_kv_heads));
  return std::max(1.0, static_cast<double>(num_gpus_) / kv_heads);
}

int64_t RooflineCostModel::kv_capacity_tokens(double utilization) const {
  const double free = hw_.memory_bytes * static_cast<double>(num_gpus_) * utilization - model_.weight_bytes();
  if (free <= 0 || model_.kv_bytes_per_token <= 0) return 0;
  return static_cast<int64_t>(free / (model_.kv_bytes_per_token * kv_replication()));
}

StepCost RooflineCostModel::breakdown(std::span<const ChunkWork> chunks) const {
  StepCost c;
  if (chunks.empty()) return c;
  double tokens = 0, pairs = 0, kv_tokens_read = 0;
  for (const ChunkWork& w : chunks) {
    const double q = static_cast<double>(w.new_tokens), ctx = static_cast<double>(w.context_tokens);
    tokens += q;
    // Query i (0-based) of the chunk sees ctx + i + 1 keys.
    pairs += q * ctx + q * (q + 1) / 2;
    kv_tokens_read += ctx + q;
  }
  const double n = static_cast<double>(num_gpus_), seqs = static_cast<double>(chunks.size());
  const double gemm_flops = 2.0 * model_.layer_params_per_token * tokens + 2.0 * model_.lm_head_params * seqs;
  double weight_params = model_.dense_weight_params;
  if (model_.num_experts > 0) {  // experts touched: at most all of them
    const double touched = std::min(static_cast<double>(model_.num_experts),
                                    tokens * static_cast<double>(model_.experts_per_token));
    weight_params += touched * model_.expert_params;
  }
  const double weight_bytes = weight_params * model_.bytes_per_param;
  c.gemm_s = std::max(gemm_flops / (hw_.gemm_flops_per_s * n), weight_bytes / (hw_.mem_bytes_per_s * n));

  const double attn_flops = model_.attn_flops_per_pair * pairs;
  // KV read once per request (flash-decoding / paged kernels), new KV written once.
  const double kv_bytes = (kv_tokens_read + tokens) * model_.kv_bytes_per_token * kv_replication();
  c.attention_s = std::max(attn_flops / (hw_.attn_flops_per_s * n), kv_bytes / (hw_.mem_bytes_per_s * n));

  if (num_gpus_ > 1 && hw_.link_bytes_per_s > 0) {
    // Ring all-reduce of the hidden states after attention and after the MLP: each GPU
    // sends 2 (n-1)/n of the buffer.
    const double buffer = tokens * static_cast<double>(model_.hidden_size) * model_.bytes_per_param;
    c.comm_s =
        2.0 * static_cast<double>(model_.num_layers) * 2.0 * (n - 1) / n * buffer / hw_.link_bytes_per_s;
  }
  c.overhead_s = hw_.step_overhead_s;
  return c;
}

}  // namespace longctx
