// The routed MLP of a mixture-of-experts layer (Mixtral, Qwen3-MoE, DeepSeek-V3) on one
// rank of a ParallelLayout. Two ways to spread it:
//
//  - TP (ep = 1): every rank holds every expert with its intermediate dim split over the
//    FFN's TP group (Megatron, like the dense MLP); the router is replicated, so all
//    ranks route alike, and each returns a partial sum that the caller's all-reduce
//    completes. The shared experts are split the same way.
//  - EP (ep > 1): the EP group (ParallelLayout::ep_group: ep consecutive ranks of a
//    stage) holds one copy of the routed experts, split contiguously. The ranks of the
//    FFN's TP group and of its KVP replicas hold the same tokens, so each takes a
//    contiguous 1/(tp·kvp) slice of them (no expert sees a token twice, and a row's
//    result never depends on which replica asked), routes it (router replicated), dispatches each
//    (token, expert) row to the expert's owner by all-to-all (counts first, then rows),
//    runs one GEMM pair per local expert over what it received, and gets the outputs
//    back by a second all-to-all; it weights and sums them per token in ascending expert
//    order, adds the shared experts (replicated, run by the slice's owner) and leaves
//    zeros in the other ranks' rows — so the all-reduces (over the KVP replicas here,
//    over the TP group by the caller) only assemble exact values and every rank ends
//    with bitwise the same rows.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "model/config.h"
#include "model/dense_weights.h"
#include "parallel/communicator.h"
#include "parallel/parallel_layout.h"

namespace longctx {

// Fills out's router, router_bias, experts and shared_expert with this rank's part of
// `full` (a MoE layer). ffn_size / ffn_index: the FFN's TP group (tp, or Helix's kvp·tp)
// and the rank's index in it; ep comes from the layout. Errors name the flag and rule.
Status shard_moe_layer(const ModelConfig& cfg, const DenseLayerWeights& full, const ParallelLayout& layout,
                       int rank, int ffn_size, int ffn_index, DenseLayerWeights& out);

// out[t, hidden] ← this rank's contribution to the layer's output for its t tokens
// `normed` (the same tokens on every member of ffn_group); the caller all-reduces `out`
// over ffn_group. replicas: the ranks outside ffn_group that hold the same tokens (the
// KVP group; null under Helix, whose FFN group already spans KVP). ep_group: the EP
// communicator (null when ep = 1). Every member of the groups calls it, also with t = 0.
void sharded_moe_mlp_forward(const ModelConfig& cfg, const DenseLayerWeights& lw, const float* normed,
                             int64_t t, Communicator& ffn_group, Communicator* replicas,
                             Communicator* ep_group, float* out);

}  // namespace longctx
