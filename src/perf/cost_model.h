// CostModel: the predicted wall time of one step from its shape (DESIGN.md §4, §6).
// sched/ asks it how long a prefill will take (LRS slack, adaptive chunk sizes); sim/
// advances its clock by it. The input is plain numbers per scheduled chunk, so perf/
// knows nothing of the scheduler's types.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "perf/hardware.h"
#include "perf/layout.h"
#include "perf/model_shape.h"

namespace longctx {

// One request's part of a step: `new_tokens` tokens (a prompt chunk, or 1 for a decode)
// attending causally over `context_tokens` already in the KV cache and over each other.
struct ChunkWork {
  int64_t context_tokens = 0;
  int64_t new_tokens = 0;
};

class CostModel {
 public:
  virtual ~CostModel() = default;
  virtual double step_time_s(std::span<const ChunkWork> chunks) const = 0;
  // Time to compute tokens [from, to) of one request on its own, as one step. (Chunking
  // adds per-step costs on top; for the long prefills where this matters the compute
  // terms dominate, and they do not depend on how the prompt is cut.)
  double prefill_time_s(int64_t from, int64_t to) const {
    const ChunkWork c{from, to - from};
    return to > from ? step_time_s({&c, 1}) : 0.0;
  }
  // Pipeline stages a step passes through. step_time_s is the time of one stage (the
  // rate at which steps start); a sampled token leaves the pipeline after this many of
  // them (sim/ delivers it then, the chunk sizer keeps this many steps within the TBT SLO).
  virtual int64_t pipeline_stages() const { return 1; }
  // Prices `base` plus one more chunk, for many candidate chunks (adaptive chunking's
  // binary search): models that can sum `base` once override it. Valid while `base`
  // and the model live.
  virtual std::function<double(const ChunkWork&)> pricer(std::span<const ChunkWork> base) const {
    return [this, base](const ChunkWork& extra) {
      std::vector<ChunkWork> w(base.begin(), base.end());
      w.push_back(extra);
      return step_time_s(w);
    };
  }
};

// Every non-empty step takes the same time: the hand-computable model of the tests.
class ConstantCostModel final : public CostModel {
 public:
  explicit ConstantCostModel(double step_s) : step_s_(step_s) {}
  double step_time_s(std::span<const ChunkWork> chunks) const override {
    return chunks.empty() ? 0.0 : step_s_;
  }

 private:
  double step_s_;
};

// Where a step's time goes (seconds), for one pipeline stage. total = gemm + attention
// + comm + overhead.
struct StepCost {
  double gemm_s = 0;       // max(GEMM FLOPs / rate, weight bytes / bandwidth)
  double attention_s = 0;  // max(attention FLOPs / rate, KV bytes read and written / bandwidth)
  double comm_s = 0;       // TP all-reduces, KVP/CP merges and KV exchange, PP hand-off
  double overhead_s = 0;   // per step + per sequence (the calibrated fixed costs)
  double total_s() const { return gemm_s + attention_s + comm_s + overhead_s; }
};

// Roofline (docs/scheduling.md has the formulas and the assumptions): the GEMM phase and
// the attention phase are each bound by compute or by memory (the larger wins; decode is
// memory bound: the weights are read once per step, each request's KV once), then the
// phases, the communication and the fixed overheads add up. The layout (perf/layout.h)
// splits the work: tp divides FLOPs and bytes (kv heads replicate past tp > H·dcp) and
// adds two all-reduces per layer; kvp and cp spread requests, and a long request's
// attention, over their groups (the step takes as long as the busiest group: the larger
// of the balanced share and the largest single chunk's share); pp divides the layers,
// and step_time_s is one stage's time. The calibration terms of the hardware table
// (per-sequence overhead, GEMM and attention scales) come from `bench profile`.
class RooflineCostModel final : public CostModel {
 public:
  RooflineCostModel(const ModelShape& model, const HardwareProfile& hw, const LayoutShape& layout);
  // `num_gpus` GPUs as one tensor-parallel group.
  RooflineCostModel(const ModelShape& model, const HardwareProfile& hw, int64_t num_gpus = 1);
  StepCost breakdown(std::span<const ChunkWork> chunks) const;
  double step_time_s(std::span<const ChunkWork> chunks) const override { return breakdown(chunks).total_s(); }
  int64_t pipeline_stages() const override { return layout_.pp; }
  // O(base) once, then O(1) per candidate chunk.
  std::function<double(const ChunkWork&)> pricer(std::span<const ChunkWork> base) const override;

  const ModelShape& model() const { return model_; }
  const HardwareProfile& hardware() const { return hw_; }
  const LayoutShape& layout() const { return layout_; }
  int64_t num_gpus() const { return layout_.world_size(); }
  // KV copies per token inside a TP group: max(1, tp / (kv heads · dcp)).
  double kv_replication() const;
  // Tokens of KV that fit in the replica's memory after the weights (one copy per
  // cp·kvp group, split over tp·pp), at `utilization`.
  int64_t kv_capacity_tokens(double utilization = 0.9) const;
  // KVP groups holding the KV of a request with `tokens` tokens (1 without kvp).
  int64_t kvp_groups(int64_t tokens) const;

 private:
  // What a step's chunks add up to; finish() turns the sums into times.
  struct StepSums {
    double seqs = 0, tokens = 0, pairs = 0, kv_tokens = 0, gemm_flops = 0, kv_bytes = 0;
    double gemm_flops_max = 0, attn_s_max = 0, tokens_max = 0, merge_bytes = 0, cp_ring_bytes = 0;
  };
  void accumulate(StepSums& a, const ChunkWork& w) const;
  StepCost finish(const StepSums& a) const;

  ModelShape model_;
  HardwareProfile hw_;
  LayoutShape layout_;
  std::optional<StepCalibration> calibration_;  // hw_'s for this model shape, if any
};

}  // namespace longctx
