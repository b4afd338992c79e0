// The parameter fields that both paged-attention kernels (the portable one in
// paged_attention.cu and the Hopper prefill in paged_prefill_sm90.cu) take from the API's
// PagedAttentionParams, filled in one place (internal: not part of the API).
#pragma once

#include <cmath>
#include <cstdint>

#include "ops/cuda/paged_attention.h"

namespace longctx::cuda::detail {

constexpr float kLog2e = 1.4426950408889634f;

// KP: a kernel's parameter block with these members (same names in both kernels).
template <typename KP>
void fill_paged_attention_common(KP& kp, const PagedAttentionParams& p) {
  kp.q = p.q;
  kp.q_stride = p.q_stride ? p.q_stride : p.num_q_heads * p.head_dim;
  kp.out = p.out;
  kp.lse = p.lse;
  kp.k_cache = p.k_cache;
  kp.v_cache = p.v_cache;
  kp.q_begin = p.q_begin;
  kp.context_lens = p.context_lens;
  kp.block_tables = p.block_tables;
  kp.block_table_stride = p.block_table_stride;
  kp.block_size = static_cast<int32_t>(p.block_size);
  kp.num_q_heads = static_cast<int32_t>(p.num_q_heads);
  kp.num_kv_heads = static_cast<int32_t>(p.num_kv_heads);
  kp.group = static_cast<int32_t>(p.num_q_heads / p.num_kv_heads);
  // Scores live in the exp2 domain: the softmax scale (default 1/√d) times log2(e).
  const float scale = p.scale != 0.0f ? p.scale : 1.0f / std::sqrt(static_cast<float>(p.head_dim));
  kp.scale_log2 = scale * kLog2e;
  kp.causal = p.causal;
}

}  // namespace longctx::cuda::detail
