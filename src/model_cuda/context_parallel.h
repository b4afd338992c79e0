// ContextParallelStep: one rank of a --cp layout on the GPU (DESIGN.md §3; the CPU's
// ShardedDenseModel is the semantics to match, its logits the result to reproduce).
//
// Each sequence's new tokens of a step are split over the CP group as ParallelLayout says
// (zig-zag for a chunk of ≥ 2·cp tokens, round-robin by position for shorter ones) and every
// token-wise op runs on the rank's own tokens only. Attention differs from the CPU's ring in
// where the K/V lives and what travels — the GPU model sees block tables, not sequences, so
// it cannot know which rank computed an old token; the placement is by position instead:
//  - KV: token p is kept by CP rank p mod cp (RankKVPlacement, bs/cp slots per global block:
//    1/cp of the single-GPU cache). After RoPE each rank's new K/V is all-gathered in the CP
//    group and every rank writes the rows it keeps.
//  - Attention ("pass-Q" rather than pass-KV): the group's queries are all-gathered, each rank
//    attends every member's queries over its own keys (causal by position: causal_lens), and
//    two all-to-alls return each member the partial states (output, LSE) of its queries,
//    merged by LSE in member order.
//  - Logits: each requested row is computed by the rank that owns its token; the rows are
//    all-gathered in the CP group and put back in the requested order on every rank.
// Exact like the ring: the same keys meet the same queries; only the merge order (member
// order here, ring order on the CPU) differs. The partial states travel and merge in fp32
// (PagedAttentionParams::out_f32, merge_attention_states over n states): the attention output
// is rounded to bf16 once, as on one GPU.
//
// Owns its device scratch and step metadata. Runs on the rank's stream (its communicator is
// ordered on it). Not thread-safe: one rank's thread owns it.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "model/forward_batch.h"
#include "model_cuda/device_buffer.h"
#include "model_cuda/rank_kv_placement.h"
#include "parallel/communicator.h"
#include "parallel/parallel_layout.h"

namespace longctx::cuda {

struct ContextParallelDims {
  int64_t max_tokens = 0, max_seqs = 0, max_blocks_per_seq = 0, max_rows = 0;
  int64_t num_q_heads = 0, num_kv_heads = 0, head_dim = 0, vocab = 0;
};

class ContextParallelStep {
 public:
  ContextParallelStep() = default;
  static Result<ContextParallelStep> create(const ContextParallelDims& dims, const ParallelLayout& layout,
                                            int rank, Communicator* cp, cudaStream_t stream);
  bool active() const { return cp_ != nullptr; }

  // Splits the engine's batch: `mine` gets this rank's tokens of every sequence (ids,
  // positions, q_begin, logit rows as local indices; slots and block tables are not used),
  // and the attention's step metadata goes to the device (staged on the stream).
  Status plan(const ForwardBatch& global, const RankKVPlacement& placement, ForwardBatch& mine);
  int64_t num_logit_rows() const { return rows_total_; }  // the global batch's

  // After RoPE: this rank's new K and V rows (t of them, token stride kv_stride, V at k + v_offset)
  // gathered in the group; the rows this rank keeps written into its cache layer.
  Status write_kv(const __nv_bfloat16* k, int64_t kv_stride, int64_t v_offset, const double* inv_freq,
                  int64_t rotary_dim, __nv_bfloat16* k_cache, __nv_bfloat16* v_cache,
                  int64_t cache_block_size);
  // This rank's queries (t rows of q_stride) attended over the keys of every member; the
  // merged attention of its own queries into out [t, hq·d].
  Status attend(const __nv_bfloat16* q, int64_t q_stride, const __nv_bfloat16* k_cache,
                const __nv_bfloat16* v_cache, int64_t cache_block_size, void* workspace,
                size_t workspace_bytes, __nv_bfloat16* out);
  // logits [rows of this rank, vocab] (its requested rows, in order) → every requested row of
  // the batch, in order, on every rank (logits must hold num_logit_rows() rows).
  Status gather_logits(float* logits);

 private:
  ContextParallelDims dims_;
  ParallelLayout layout_;
  int rank_ = 0;
  Communicator* cp_ = nullptr;
  cudaStream_t stream_ = nullptr;
  int members_ = 1;
  // The step's plan (host): tokens per member, the largest share, logit-row owners.
  int64_t t_mine_ = 0, t_max_ = 0, vseqs_ = 0, vstride_ = 0, max_vctx_ = 0, max_vq_ = 0;
  int64_t rows_mine_ = 0, rows_max_ = 0, rows_total_ = 0;
  std::vector<int> row_owner_;
  std::vector<int64_t> row_index_;
  DeviceBuffer buf_, meta_;
  HostStaging meta_host_;
  __nv_bfloat16 *kv_mine_ = nullptr, *kv_all_ = nullptr, *q_mine_ = nullptr, *q_all_ = nullptr;
  float *o_ = nullptr, *o_recv_ = nullptr;  // fp32 partial outputs [cp, t_max, hq, d]: sent, received
  float *lse_ = nullptr, *lse_recv_ = nullptr, *logits_all_ = nullptr;
  // Offsets into meta_ / meta_host_: the attention's virtual sequences (member × sequence,
  // plus one padding sequence per member), each row's causal length, the gathered rows' cache
  // slots, and zero positions (the KV write's RoPE by angle 0 is the identity).
  struct {
    size_t q_begin, ctx, tables, causal, slots, zeros, end;
  } m_{};
};

}  // namespace longctx::cuda
