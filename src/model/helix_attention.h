// Helix (DESIGN.md §3): the step between the attention layout and the FFN layout.
// In attention, KVP rank k of TPA rank j holds the KV of one token shard for the
// kv heads of j, computed the full Q/K/V projections of j's heads for every new token
// (the residual is replicated, so no pre-attention gather) and attended over its
// shard: a partial state (o, lse) for all Hq/tp heads of j. One all-to-all in the KVP
// group hands each KVP rank every shard's partial state of its own share of those
// heads (ParallelLayout::helix_first_head), which it merges by LSE. Each of the kvp·tp
// ranks then owns the exact attention output of a distinct set of heads: the input
// split of a Megatron row-parallel o_proj over the whole helix group, after which the
// FFN runs as TP over the same kvp·tp ranks.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "parallel/communicator.h"
#include "parallel/parallel_layout.h"

namespace longctx {

// o [t, Hq/tp, d] and lse [t, Hq/tp]: this rank's partial attention over its KV shard.
// Returns the merged output [t, h, d] of this KVP rank's heads (h = its share), rows
// in token order, merged in KVP group order so every layout run is bitwise repeatable.
Tensor helix_exchange(const ParallelLayout& layout, int kvp_rank, const float* o, const float* lse, int64_t t,
                      int64_t head_dim, Communicator& kvp);

}  // namespace longctx
