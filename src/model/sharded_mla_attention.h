// DeepSeek-V3 multi-head latent attention (the absorbed form of mla_attention.h) on one
// rank of a ParallelLayout:
//  - TP: the query heads (q_b / q_proj rows, W_uk, W_uv, o_proj columns) split over tp;
//    the latent projection kv_a and q_a are replicated. MLA's cache has one "kv head" (the
//    latent, kv_lora_rank + qk_rope_head_dim per token), so TP alone duplicates it tp
//    times — the layout is built with H = 1 (mla_layout_dims).
//  - DCP: the latent tokens sharded inside the TP group (token n on DCP rank
//    (n / I) mod dcp); the absorbed queries all-gathered in the DCP group, each rank
//    attends over its own latents with LSE, the partial states go back to their heads'
//    owners by one all-to-all and are merged — as the dense DCP path does. At tp = dcp
//    every rank holds ~1/tp of the latents and nothing is duplicated.
//  - KVP: contiguous shards over the kvp groups; partial states all-gathered and merged.
//  - CP: each rank's latents of a sequence passed round the CP ring (the block in hand
//    attended while the next travels), partial states merged by LSE — the dense ring,
//    with one latent array instead of K and V.
//  - Helix: H = 1 makes TPA 1, so every rank of the helix group computes all heads'
//    absorbed queries over its KVP shard of the latents; one all-to-all in the KVP
//    group (helix_exchange) leaves each rank the merged output of its share of the
//    heads, projected by its o_proj columns (row-parallel over the helix group).
//  - PP: per layer, as everywhere.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "model/config.h"
#include "model/dense_weights.h"
#include "model/sharded_sequence_kv.h"
#include "parallel/parallel_layout.h"
#include "parallel/rank_communicators.h"

namespace longctx {

// The layout dims of an MLA model: one latent kv head.
LayoutModelDims mla_layout_dims(const ModelConfig& cfg);

// This rank's MLA weights of layer `full` into `out` (its tp rank's heads).
Status shard_mla_layer(const ModelConfig& cfg, const DenseLayerWeights& full, const ParallelLayout& layout,
                       int rank, DenseLayerWeights& out);

// One sequence's new tokens on this rank: local rows [row, row + len), in runs of
// consecutive positions (one run unless CP split the chunk zig-zag).
struct MlaSequence {
  struct Run {
    int64_t row, len, pos0;  // local rows [row, row + len) sit at positions pos0..
  };
  ShardedSequenceKV* kv = nullptr;
  int64_t row = 0, len = 0;
  std::vector<Run> runs;
};

// out[t, hidden] ← this rank's o_proj partial sum for its t new tokens (`normed`); the
// caller all-reduces it over the TP group. Writes the new latents this rank stores at
// `slots` (−1: stored elsewhere). Every rank of the layout's TP/DCP/KVP groups calls it.
void sharded_mla_attention_forward(const ModelConfig& cfg, const ParallelLayout& layout,
                                   const DenseLayerWeights& lw, const double* inv_freq, int64_t layer,
                                   const float* normed, const std::vector<MlaSequence>& seqs,
                                   const std::vector<int32_t>& positions, const std::vector<int64_t>& slots,
                                   RankCommunicators& comms, float* out);

}  // namespace longctx
