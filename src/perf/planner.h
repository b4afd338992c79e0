// Layout planner behind `longctx plan` (DESIGN.md §3 and §6): from a model's shape and a
// cluster (GPUs, memory per GPU) it prices candidate ParallelLayouts — weights per rank,
// KV duplication, the longest context and the largest batch that fit — and recommends
// one: raise tp until the weights fit, then dcp to remove the KV duplication that
// tp > H causes, then kvp groups for contexts one TP group cannot hold. Pure arithmetic;
// no tensors, no devices.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "perf/model_shape.h"

namespace longctx {

struct PlanRequest {
  int64_t gpus = 1;
  double gpu_memory_bytes = 0;
  // Share of device memory for weights + KV (the rest: activations, workspaces, the
  // CUDA context), as vLLM's --gpu-memory-utilization.
  double memory_utilization = 0.9;
  int64_t context_tokens = 0;  // per request
  int64_t batch = 1;           // requests of context_tokens held at once
  int64_t max_tp = 8;          // GPUs of one NVLink domain: TP stays inside it
  int64_t block_size = 16;     // KV block (kvp shards are whole blocks)
  double weight_bytes = 2;     // per parameter: 2 bf16, 1 fp8
  double kv_bytes = 2;         // per KV element: 2 bf16
};

struct PlannedLayout {
  int64_t tp = 1, dcp = 1, cp = 1, kvp = 1, pp = 1;
  int64_t kvp_shard_tokens = 0;  // kvp > 1 only
  double weights_bytes_per_rank = 0;
  // Bytes of KV one token adds on the rank that holds the most of it.
  double kv_bytes_per_token_per_rank = 0;
  int64_t kv_duplication = 1;  // copies of each token's KV: tp / (H·dcp), at least 1
  bool weights_fit = false;
  int64_t max_context_tokens = 0;  // one request alone
  int64_t max_batch = 0;           // requests of the requested context

  int64_t world_size() const { return tp * cp * kvp * pp; }
  std::string flags() const;  // "--tp 8 --dcp 8" (only what differs from 1)
};

struct Plan {
  double weights_bytes = 0;  // all weights, one copy (embeddings included)
  double kv_bytes_per_token = 0;
  int64_t num_heads = 0, num_kv_heads = 0;
  double usable_bytes_per_gpu = 0;        // gpu_memory_bytes · memory_utilization
  std::vector<PlannedLayout> candidates;  // every valid (tp, dcp) with tp ≤ min(gpus, max_tp)
  bool fits = false;
  PlannedLayout recommended;           // meaningful when fits
  std::string error;                   // when !fits: what does not fit, and by how much
  std::vector<std::string> reasoning;  // the steps taken, one line each
};

// tp / (H·dcp), at least 1 (H = kv heads; 1 for MLA) — ParallelLayout::kv_duplication.
int64_t kv_duplication(int64_t tp, int64_t dcp, int64_t num_kv_heads);

// Errors are for bad requests (no GPUs, no memory, no context); a request that cannot
// fit comes back with fits = false and `error` saying why.
// Weights are ModelShape's plus the input embedding table (resident, though a step does
// not read it) unless it is tied to the LM head; all divided evenly over tp·pp.
Result<Plan> plan_layout(const ModelConfig& config, const PlanRequest& req);

// Fills l's figures (weights and KV per rank, duplication, max context and batch) from a
// plan's model figures (`p` as plan_layout returns it) — for a layout given by the user.
PlannedLayout price_layout(const Plan& p, const PlanRequest& req, PlannedLayout l);

}  // namespace longctx
