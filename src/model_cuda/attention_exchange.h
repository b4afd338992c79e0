// AttentionExchange: the GPU twin of model/partial_attention_exchange.h for one rank of a
// DCP / KVP layout — what turns attention over the keys this rank holds into exact
// attention of its own query heads (DESIGN.md §3):
//  - DCP: the DCP group's queries all-gathered before attention (every member holds the same
//    kv head and other query heads); after it one all-to-all hands each member every
//    member's partial state (output + LSE) of its own heads, merged in member order.
//  - KVP: the KVP group's partial states of the same heads all-gathered and merged in member
//    order, so every member gets the same bits.
// Partial states stay fp32 from the attention kernel (PagedAttentionParams::out_f32) through
// the exchange to the last merge (merge_attention_states over n states), which rounds the
// output to bf16 once — as the single-GPU kernel rounds its own split merge once. (Rounding each
// partial and each merged output to bf16 put these layouts at 2.2e-2 of the single rank's logits
// on the test models, against 3.8e-3 for TP: docs/cuda.md.) Queries travel as bf16 bit patterns
// through the fp32 communicators, so nothing is rounded on the way.
//
// Owns its device scratch, sized for max_tokens. Runs on the rank's stream, on which its
// communicators are ordered. Not thread-safe (one rank's thread owns it).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/status.h"
#include "model_cuda/device_buffer.h"
#include "parallel/communicator.h"

namespace longctx::cuda {

struct AttentionExchangeDims {
  int64_t max_tokens = 0;
  int64_t num_q_heads = 0;  // this rank's own query heads (hq)
  int64_t head_dim = 0;
};

class AttentionExchange {
 public:
  AttentionExchange() = default;
  // dcp / kvp: the rank's groups, null when the layout has none (borrowed, outliving this).
  static Result<AttentionExchange> create(const AttentionExchangeDims& dims, Communicator* dcp,
                                          Communicator* kvp, cudaStream_t stream);

  bool active() const { return dcp_ || kvp_; }
  // Query heads this rank attends with: dcp · hq.
  int64_t num_attended_heads() const { return members_dcp() * dims_.num_q_heads; }

  // The queries to attend with, [t, dcp·hq, d] rows of *q_stride: under DCP the group's
  // gathered (member j's heads at j·hq), else `q` itself (rows of q_stride).
  Status gather_queries(const __nv_bfloat16* q, int64_t q_stride, int64_t t, const __nv_bfloat16** qa,
                        int64_t* qa_stride);
  // Where the attention writes its partial state over this rank's keys: out [t, dcp·hq, d]
  // (contiguous, fp32: PagedAttentionParams::out_f32), lse [t, dcp·hq].
  float* partial_out() const { return po_; }
  float* partial_lse() const { return pl_; }
  // Merges the partial states of every member into out [t, hq·d] (this rank's heads), in
  // member order (DCP first, then KVP), rounding to bf16 once at the end.
  Status merge(int64_t t, __nv_bfloat16* out);

 private:
  int members_dcp() const { return dcp_ ? dcp_->size() : 1; }
  // One member's partial state of hq heads for t tokens, in floats: o (fp32) then lse, each
  // rounded up to 256 bytes. The same on every member of a group (same t).
  int64_t chunk_floats(int64_t t) const;

  AttentionExchangeDims dims_;
  Communicator *dcp_ = nullptr, *kvp_ = nullptr;
  cudaStream_t stream_ = nullptr;
  DeviceBuffer buf_;
  __nv_bfloat16 *q_mine_ = nullptr, *q_all_ = nullptr, *q_gathered_ = nullptr;
  float *po_ = nullptr, *pl_ = nullptr, *send_ = nullptr, *recv_ = nullptr;
};

}  // namespace longctx::cuda
