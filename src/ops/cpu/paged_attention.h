// Batched attention over a paged KV cache (vLLM PagedAttention): one call per layer serves a
// whole step's batch — decodes (1 new token) and prefill chunks alike — reading each
// sequence's keys through its block table, and returns the LSE with the output so partial
// results merge exactly (DESIGN.md §3).
//
// Cache layout, per layer: k_cache and v_cache are [num_blocks, block_size, num_kv_heads,
// head_dim] fp32. Block 0 is the reserved null block. A sequence's token at position p lives
// in slot block_table[p / block_size] · block_size + p % block_size.
#pragma once

#include <cstdint>

namespace longctx::cpu {

// Writes new tokens' K and V into their cache slots: k_cache[slots[i]] = k[i], same for v.
// k/v: [num_tokens, kv_width] with token stride token_stride (so they can be read straight
// from a fused qkv projection output); kv_width = num_kv_heads · head_dim. slots[i] = -1
// skips token i (padding).
void write_kv_cache(const float* k, const float* v, int64_t num_tokens, int64_t token_stride,
                    int64_t kv_width, const int64_t* slots, float* k_cache, float* v_cache);

struct PagedAttentionParams {
  // All sequences' query tokens back to back: [total_q, num_q_heads, head_dim], token
  // stride q_stride (0 = num_q_heads · head_dim).
  const float* q = nullptr;
  int64_t q_stride = 0;
  float* out = nullptr;  // [total_q, num_q_heads, head_dim] contiguous
  // [total_q, num_q_heads]: log Σ_{visible j} exp(scale · q·k_j), natural log; -inf when no
  // key is visible (and then out = 0). May be null when the caller does not need it.
  float* lse = nullptr;
  const float* k_cache = nullptr;  // [num_blocks, block_size, num_kv_heads, head_dim]
  const float* v_cache = nullptr;
  int64_t block_size = 16;
  int64_t num_seqs = 0;
  const int64_t* q_begin = nullptr;       // [num_seqs + 1] cumulative query-token offsets
  const int64_t* context_lens = nullptr;  // [num_seqs] keys 0..context_len-1 (this step's already written)
  const int32_t* block_tables = nullptr;  // [num_seqs, block_table_stride]
  int64_t block_table_stride = 0;
  // GQA/MQA: q head h uses kv head h / (Hq/Hkv); Hq must be a multiple of Hkv.
  int64_t num_q_heads = 0, num_kv_heads = 0, head_dim = 0;
  float scale = 0;  // 0 = 1/sqrt(head_dim)
  // Query i of sequence s sits at position context_lens[s] − num_q(s) + i; the key at
  // position p is visible iff p ≤ that position. causal = false: every key is visible.
  bool causal = true;
  // Flash-decoding: keys per partition when one work item's keys are split over threads and
  // the partial results merged by LSE. 0 = automatic (split only when there are too few work
  // items to keep every thread busy); > 0 forces that partition size (rounded up to whole
  // blocks) on every work item, which tests use to exercise the split path.
  int64_t kv_partition_size = 0;
};

// One OpenMP region over every (sequence, kv head, query block, key partition) work item.
// Throws std::invalid_argument when num_q_heads is not a multiple of num_kv_heads or
// block_size < 1. Allocates only per-thread scratch (and partial outputs when it splits).
void paged_attention(const PagedAttentionParams& p);

}  // namespace longctx::cpu
