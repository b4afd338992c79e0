// Attention that returns the log-sum-exp with the output (DESIGN.md §3): every partial
// result (a KV shard on another rank, a cached prefix, a chunk) can be merged exactly by
// merge_attention_states.
#pragma once

#include <cstdint>

namespace longctx::cpu {

struct AttentionParams {
  const float* q = nullptr;  // [num_q, num_q_heads, head_dim], token stride q_stride
  const float* k = nullptr;  // [num_kv, num_kv_heads, head_dim], token stride kv_stride
  const float* v = nullptr;  // same layout as k
  float* out = nullptr;      // [num_q, num_q_heads, head_dim] contiguous
  float* lse = nullptr;      // [num_q, num_q_heads]; natural log; -inf when no key is visible
  int64_t num_q = 0, num_kv = 0;
  int64_t num_q_heads = 0, num_kv_heads = 0, head_dim = 0;  // GQA/MQA: q head h uses kv head h / (Hq/Hkv)
  int64_t q_stride = 0, kv_stride = 0;                      // 0 = contiguous
  float scale = 0;                                          // 0 = 1/sqrt(head_dim)
  // Causal mask over absolute positions: query i sits at q_pos0 + i, key j at kv_pos0 + j;
  // key j is visible to query i iff kv_pos0 + j <= q_pos0 + i. Chunked prefill over a
  // cached prefix is q_pos0 = prefix length, kv_pos0 = 0.
  bool causal = true;
  int64_t q_pos0 = 0, kv_pos0 = 0;
  // Optional explicit key positions [num_kv] (keys of a rank's shard need not be
  // contiguous, e.g. DCP round-robin); overrides kv_pos0 when set.
  const int32_t* kv_positions = nullptr;
};

void attention(const AttentionParams& p);

// Merges two partial attention states over disjoint key sets (FlashInfer's merge_state):
// lse = log(e^a + e^b); out = e^(lse_a-lse)·o_a + e^(lse_b-lse)·o_b. A side with
// lse = -inf drops out; two -inf sides give zeros and -inf (never NaN). Output may alias a.
void merge_attention_states(const float* o_a, const float* lse_a, const float* o_b, const float* lse_b,
                            float* o_out, float* lse_out, int64_t rows, int64_t head_dim);

}  // namespace longctx::cpu
