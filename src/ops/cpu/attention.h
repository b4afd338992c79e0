// Attention that returns the log-sum-exp with the output (DESIGN.md §3): every partial
// result (a KV shard on another rank, a cached prefix, a chunk) can be merged exactly by
// merge_attention_states.
#pragma once

#include <cstdint>

namespace longctx::cpu {

struct AttentionParams {
  const float* q = nullptr;  // [num_q, num_q_heads, head_dim], token stride q_stride
  const float* k = nullptr;  // [num_kv, num_kv_heads, head_dim], token stride kv_stride
  const float* v = nullptr;  // same layout and strides as k (v head dim = head_dim)
  float* out = nullptr;      // [num_q, num_q_heads, head_dim] contiguous
  // [num_q, num_q_heads]: lse = log Σ_{visible j} exp(scale · q·k_j), natural log, the
  // scale included; -inf when no key is visible (and then out = 0).
  float* lse = nullptr;
  int64_t num_q = 0, num_kv = 0;
  // GQA/MQA: q head h uses kv head h / (Hq/Hkv); Hq must be a multiple of Hkv.
  int64_t num_q_heads = 0, num_kv_heads = 0, head_dim = 0;
  int64_t q_stride = 0, kv_stride = 0;  // elements between tokens; 0 = contiguous
  float scale = 0;                      // 0 = 1/sqrt(head_dim)
  // Causal mask over absolute positions: query i sits at q_pos0 + i, key j at kv_pos0 + j;
  // key j is visible to query i iff kv_pos0 + j <= q_pos0 + i. Chunked prefill over a
  // cached prefix is q_pos0 = prefix length, kv_pos0 = 0. causal = false: every key visible.
  bool causal = true;
  int64_t q_pos0 = 0, kv_pos0 = 0;
  // Optional explicit key positions [num_kv] (keys of a rank's shard need not be
  // contiguous or sorted, e.g. DCP round-robin); overrides kv_pos0 when set.
  const int32_t* kv_positions = nullptr;
};

// fp32 online softmax over blocks of keys (FlashAttention-2), OpenMP over (query block,
// kv head). Throws std::invalid_argument when num_q_heads is not a multiple of num_kv_heads.
void attention(const AttentionParams& p);

// Merges two partial attention states over disjoint key sets (FlashInfer's merge_state):
// lse = log(e^a + e^b); out = e^(lse_a-lse)·o_a + e^(lse_b-lse)·o_b. A side with
// lse = -inf drops out (its o is never read, so it may be anything); two -inf sides give
// zeros and -inf (never NaN). o_out may alias o_a (or o_b), lse_out may alias lse_a (or lse_b).
// Layout: rows of head_dim (e.g. [num_q · num_q_heads, head_dim]) with one lse per row.
void merge_attention_states(const float* o_a, const float* lse_a, const float* o_b, const float* lse_b,
                            float* o_out, float* lse_out, int64_t rows, int64_t head_dim);

}  // namespace longctx::cpu
