#include "perf/cost_model.h"

#include <algorithm>
#include <cmath>

namespace longctx {

RooflineCostModel::RooflineCostModel(const ModelShape& model, const HardwareProfile& hw, const LayoutShape& layout)
    : model_(model), hw_(hw), layout_(layout) {
  if (const StepCalibration* c = hw_.calibration_for(model_.layer_params_per_token, model_.attn_flops_per_pair))
    calibration_ = *c;
  for (int64_t* d : {&layout_.tp, &layout_.pp, &layout_.cp, &layout_.dcp, &layout_.kvp}) *d = std::max<int64_t>(1, *d);
  if (layout_.tp % layout_.dcp != 0) layout_.dcp = 1;
  if (layout_.kvp > 1 && layout_.kvp_shard_tokens <= 0)
    layout_.kvp_shard_tokens = std::max<int64_t>(1, (kv_capacity_tokens() + layout_.kvp - 1) / layout_.kvp);
}

RooflineCostModel::RooflineCostModel(const ModelShape& model, const HardwareProfile& hw, int64_t num_gpus)
    : RooflineCostModel(model, hw, LayoutShape{std::max<int64_t>(1, num_gpus), 1, 1, 1, 1, 0}) {}

double RooflineCostModel::kv_replication() const {
  const double kv_heads = static_cast<double>(std::max<int64_t>(1, model_.num_kv_heads));
  return std::max(1.0, static_cast<double>(layout_.tp) / (kv_heads * static_cast<double>(layout_.dcp)));
}

int64_t RooflineCostModel::kv_capacity_tokens(double utilization) const {
  const double world = static_cast<double>(layout_.world_size());
  const double free = hw_.memory_bytes * world * utilization -
                      model_.weight_bytes() * static_cast<double>(layout_.groups());
  if (free <= 0 || model_.kv_bytes_per_token <= 0) return 0;
  return static_cast<int64_t>(free / (model_.kv_bytes_per_token * kv_replication()));
}

int64_t RooflineCostModel::kvp_groups(int64_t tokens) const {
  if (layout_.kvp <= 1 || tokens <= 0) return 1;
  const int64_t shards = (tokens + layout_.kvp_shard_tokens - 1) / layout_.kvp_shard_tokens;
  return std::clamp<int64_t>(shards, 1, layout_.kvp);
}

void RooflineCostModel::accumulate(StepSums& a, const ChunkWork& w) const {
  const double tp = static_cast<double>(layout_.tp), pp = static_cast<double>(layout_.pp);
  const double cp = static_cast<double>(layout_.cp);
  const double layers = static_cast<double>(model_.num_layers) / pp;  // per stage
  const double hidden_bytes = static_cast<double>(model_.hidden_size) * model_.bytes_per_param;
  const double kv_rep = kv_replication();
  const double q = static_cast<double>(w.new_tokens), ctx = static_cast<double>(w.context_tokens);
  a.seqs += 1;
  a.tokens += q;
  // Query i (0-based) of the chunk sees ctx + i + 1 keys.
  const double pairs = q * ctx + q * (q + 1) / 2;
  a.pairs += pairs;
  a.kv_tokens += ctx + q;
  const double gemm_flops = 2.0 * model_.layer_params_per_token * q + 2.0 * model_.lm_head_params;
  a.gemm_flops += gemm_flops;
  // A chunk's tokens split over the cp ranks (a decode's one token cannot); its KV, and
  // so its attention, over the cp ranks and the kvp groups holding its prefix.
  const double token_split = std::max(1.0, std::min(cp, q));
  const double kv_split = cp * static_cast<double>(kvp_groups(w.context_tokens + w.new_tokens));
  a.gemm_flops_max = std::max(a.gemm_flops_max, gemm_flops / token_split);
  a.tokens_max = std::max(a.tokens_max, q / token_split);
  // KV read once per request (flash-decoding / paged kernels), new KV written once.
  const double kv_bytes = (ctx + 2 * q) * model_.kv_bytes_per_token * kv_rep / pp;
  const double attn_s = std::max(model_.attn_flops_per_pair * pairs / pp / (hw_.attn_flops_per_s * tp),
                                 kv_bytes / (hw_.mem_bytes_per_s * tp));
  a.kv_bytes += kv_bytes;
  a.attn_s_max = std::max(a.attn_s_max, attn_s / kv_split);
  // Partial attention outputs (and the queries) travel between the ranks sharing the
  // KV, per layer: each sends (n-1)/n of q · hidden.
  if (kv_split > 1) a.merge_bytes += 2.0 * (kv_split - 1) / kv_split * q * hidden_bytes / tp * layers;
  // Context parallel: the new tokens' KV circulates to every cp rank (ring), per layer.
  if (cp > 1 && q > 1) a.cp_ring_bytes += (cp - 1) / cp * q * model_.kv_bytes_per_token * kv_rep / tp / pp;
}

StepCost RooflineCostModel::finish(const StepSums& a) const {
  StepCost c;
  if (a.seqs == 0) return c;
  const double tp = static_cast<double>(layout_.tp), pp = static_cast<double>(layout_.pp);
  const double groups = static_cast<double>(layout_.groups());
  const double layers = static_cast<double>(model_.num_layers) / pp;
  const double hidden_bytes = static_cast<double>(model_.hidden_size) * model_.bytes_per_param;
  // The busiest group: at least its balanced share, at least the largest chunk's share.
  const double gemm_flops = std::max(a.gemm_flops / groups, a.gemm_flops_max) / pp;
  double weight_params = model_.dense_weight_params;
  if (model_.num_experts > 0) {  // experts touched: at most all of them
    const double touched = std::min(static_cast<double>(model_.num_experts),
                                    a.tokens * static_cast<double>(model_.experts_per_token));
    weight_params += touched * model_.expert_params;
  }
  const double weight_bytes = weight_params * model_.bytes_per_param / pp;
  c.gemm_s = std::max(gemm_flops / (hw_.gemm_flops_per_s * tp), weight_bytes / (hw_.mem_bytes_per_s * tp));
  // Balanced: the step's attention FLOPs and KV bytes (each kernel phase bound by the
  // larger) shared by the groups.
  const double attn_balanced_s = std::max(model_.attn_flops_per_pair * a.pairs / pp / (hw_.attn_flops_per_s * tp),
                                          a.kv_bytes / (hw_.mem_bytes_per_s * tp)) /
                                 groups;
  c.attention_s = std::max(attn_balanced_s, a.attn_s_max);

  const double group_tokens = std::max(a.tokens / groups, a.tokens_max);
  if (layout_.tp > 1 && hw_.link_bytes_per_s > 0) {
    // Ring all-reduce of the hidden states after attention and after the MLP: each GPU
    // sends 2 (n-1)/n of the buffer.
    c.comm_s += 2.0 * layers * 2.0 * (tp - 1) / tp * group_tokens * hidden_bytes / hw_.link_bytes_per_s;
  }
  const double net = hw_.inter_group_bytes_per_s();
  if (net > 0) {
    c.comm_s += (a.merge_bytes / groups + a.cp_ring_bytes / groups) / net;
    // Pipeline hand-off: the stage's activations to the next stage.
    if (layout_.pp > 1) c.comm_s += group_tokens * hidden_bytes / tp / net;
  }
  c.overhead_s = hw_.step_overhead_s;

  // A measured fit for this model shape replaces the roofline's fixed costs and scales
  // its GEMM term (single device: the fit was measured on one).
  if (calibration_) {
    const double split = groups * tp * pp;
    c.gemm_s = calibration_->gemm_scale * c.gemm_s + calibration_->per_token_s * a.tokens / split;
    c.attention_s = (calibration_->per_pair_s * a.pairs + calibration_->per_kv_token_s * a.kv_tokens) / split;
    c.overhead_s = calibration_->step_s + calibration_->per_seq_s * a.seqs;
    if (calibration_->small_m > 0) {
      const double small_m = static_cast<double>(calibration_->small_m);
      if (a.tokens > small_m) c.gemm_s += calibration_->wide_gemm_s;
      if (a.tokens <= small_m) c.gemm_s += calibration_->per_narrow_token_s * a.tokens;
      if (a.seqs > small_m) c.gemm_s += calibration_->wide_head_s;
    }
  }
  return c;
}

StepCost RooflineCostModel::breakdown(std::span<const ChunkWork> chunks) const {
  StepSums a;
  for (const ChunkWork& w : chunks) accumulate(a, w);
  return finish(a);
}

std::function<double(const ChunkWork&)> RooflineCostModel::pricer(std::span<const ChunkWork> base) const {
  StepSums a;
  for (const ChunkWork& w : base) accumulate(a, w);
  return [this, a](const ChunkWork& extra) {
    StepSums b = a;
    accumulate(b, extra);
    return finish(b).total_s();
  };
}

}  // namespace longctx
