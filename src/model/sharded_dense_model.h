// ShardedDenseModel: one rank's part of the dense Llama family (Llama, Qwen2, Qwen3)
// under a ParallelLayout (DESIGN.md §3). Every rank of a layout runs forward in
// lockstep on the same batch; together they produce the logits of DenseModel.
//
//  - TP (Megatron): q/k/v heads and o_proj columns per rank, gate/up columns and down
//    columns per rank; one all-reduce after attention and one after the MLP. When
//    tp > H each kv head is replicated on tp/H ranks (layout().kv_duplication()).
//  - DCP: the replicated KV is sharded along tokens inside the TP group; queries are
//    all-gathered in the DCP group, each rank attends over its own tokens, and the
//    partial outputs (with LSE) go back to their heads' owners by one all-to-all and
//    are merged with merge_attention_states.
//  - KVP: the sequence's KV is split into contiguous shards over the kvp groups; every
//    group runs the layer on the same tokens (the FFN replicated), attends over its
//    shard, and the partial outputs are all-gathered in the KVP group and merged.
//  - CP: each sequence's new tokens are split zig-zag over the CP group and every
//    token-wise op runs on the rank's own tokens only; attention passes each rank's
//    K/V of the sequence round the ring (send/recv, the block in hand attended while the
//    next travels) and merges the partial states by LSE. The KV stays where it was
//    computed, so later chunks and decodes read it in place.
//  - PP: layers split over stages; the residual stream goes stage to stage by send/recv.
//  - Helix (--helix): attention as KVP × TPA (tp ≤ H, each rank projecting Q/K/V of
//    its heads for every token), one all-to-all of partial states in the KVP group so
//    each rank merges a share of the heads (helix_attention.h), then o_proj and the MLP
//    as TP over all kvp·tp ranks (comms.helix) with the residual replicated on them.
//  - MoE and MLA: despite the class's name (kept so its API stays put) it also runs
//    Mixtral, Qwen3-MoE and DeepSeek-V3: routed MLPs TP-split or expert-parallel
//    (--ep, sharded_moe_mlp.h) and MLA heads over TP with the latent cache sharded by
//    DCP/KVP (sharded_mla_attention.h; build the layout with mla_layout_dims).
// The residual stream of a rank's tokens is replicated on its TP and KVP groups. The LM head is split
// over the vocabulary when tp divides it (then all-gathered), else replicated.
#pragma once

#include <span>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "model/config.h"
#include "model/dense_weights.h"
#include "model/sharded_sequence_kv.h"
#include "parallel/parallel_layout.h"
#include "parallel/rank_communicators.h"

namespace longctx {

// One sequence's new tokens in a sharded forward (the same on every rank except kv,
// which is that rank's share of the sequence's cache).
struct ShardedStep {
  std::span<const int32_t> ids;
  ShardedSequenceKV* kv = nullptr;
  std::vector<int64_t> logit_rows;  // indices into ids whose logits come back, in this order
};

class ShardedDenseModel {
 public:
  // The dims to build a model's ParallelLayout with: its heads and layers, one kv head
  // for MLA (the latent), and its routed experts (which --ep must divide).
  static LayoutModelDims layout_dims(const ModelConfig& cfg);
  // Takes this rank's slices of `full` (views where a slice is contiguous, copies where
  // it is not). The layout must have been created with this model's dims (layout_dims).
  static Result<ShardedDenseModel> shard(const ModelConfig& cfg, const DenseWeights& full,
                                         const ParallelLayout& layout, int rank);

  const ModelConfig& config() const { return cfg_; }
  const ParallelLayout& layout() const { return layout_; }
  int rank() const { return rank_; }
  // Ranks of the last pipeline stage return logits; the others return an empty tensor.
  bool returns_logits() const { return coords_.pp == layout_.config().pp - 1; }
  ShardedSequenceKV new_kv(int64_t capacity_tokens) const;

  // Runs a batch of sequences' new tokens; returns fp32 logits [Σ logit_rows, vocab]
  // (sequence after sequence) on the last stage. Every rank must call it with the same
  // batch (ids, logit rows and sequence lengths), each with its own kv shares.
  Result<Tensor> forward(std::span<ShardedStep> batch, RankCommunicators& comms) const;
  Result<Tensor> forward(std::span<const int32_t> ids, ShardedSequenceKV& kv,
                         std::span<const int64_t> logit_rows, RankCommunicators& comms) const;

 private:
  // A run of consecutive positions among this rank's new tokens of one sequence.
  struct QueryRun {
    int64_t row, len, pos0;  // local rows [row, row + len) sit at positions pos0..
  };
  struct SeqInfo {
    ShardedSequenceKV* kv;
    std::vector<QueryRun> runs;  // this rank's tokens of the sequence (all of them when cp = 1)
    int64_t local_rows;          // Σ runs' len
  };
  // Keys of one sequence held somewhere in the CP group: K and V [n, kv width] and positions.
  struct KeyBlock {
    const float *k, *v;
    const int32_t* pos;
    int64_t n;
  };
  ShardedDenseModel(ModelConfig cfg, ParallelLayout layout, int rank, DenseWeights w, int64_t local_vocab);
  void attention_block(int64_t layer, const float* normed, const std::vector<SeqInfo>& seqs,
                       const std::vector<int32_t>& positions, const std::vector<int64_t>& slots,
                       RankCommunicators& comms, float* out) const;
  void attend(const float* q, int64_t q_stride, int64_t num_q_heads, const SeqInfo& s, const KeyBlock& keys,
              float* o, float* lse) const;
  void ring_exchange(int64_t layer, const float* q, int64_t q_stride, int64_t num_q_heads,
                     const std::vector<SeqInfo>& seqs, RankCommunicators& comms, float* o, float* lse) const;
  void mlp_block(int64_t layer, const float* normed, int64_t num_tokens, float* out) const;

  ModelConfig cfg_;
  ParallelLayout layout_;
  int rank_ = 0;
  RankCoords coords_;
  DenseWeights w_;           // layers: this stage's only; q/k/v, o, gate/up, down: this rank's slices
  int64_t local_vocab_ = 0;  // rows of w_.lm_head (vocab / tp, or vocab when replicated)
  std::vector<double> inv_freq_;
};

}  // namespace longctx
