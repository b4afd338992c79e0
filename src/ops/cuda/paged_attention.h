// Batched attention over a paged bf16 KV cache on the GPU, with the LSE (DESIGN.md §3):
// the CUDA twin of cpu::paged_attention. One call per layer serves a step's batch —
// prefill chunks over a cached prefix and decodes alike.
//
// Kernel (paged_attention.cu): FlashAttention-2 — a thread block owns a tile of query rows
// of one kv head and walks the keys in tiles of 64 (cp.async double buffering through a
// swizzled shared-memory tile), S = Q·Kᵀ and O += P·V on tensor cores (mma.sync m16n8k16
// bf16, fp32 accumulators), online softmax in fp32 (exp2 domain). The query rows of a tile
// are (token, q head of the kv head's group) pairs, so with GQA each K/V tile is read once
// for the whole group. Two shapes of the same kernel: prefill (4 warps × 32 rows, each warp
// all 64 keys of a tile) and decode, max_num_q == 1 (1 × 16 rows, the 4 warps split each
// key tile and merge at the end). Measured speed: bench/RESULTS.md; design: docs/cuda.md. Flash-decoding:
// when the (sequence, kv head, row tile) work items are too few to fill the GPU, the keys are split into
// partitions over more thread blocks, each writes a partial fp32 output + LSE into the workspace, and a merge
// kernel combines them (the same merge as merge_attention_states, over n partitions).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace longctx::cuda {

struct PagedAttentionParams {
  // All sequences' query tokens back to back: [total_q, num_q_heads, head_dim], token
  // stride q_stride (0 = num_q_heads · head_dim). 16-byte aligned rows (head_dim % 8 == 0).
  const __nv_bfloat16* q = nullptr;
  int64_t q_stride = 0;
  __nv_bfloat16* out = nullptr;  // [total_q, num_q_heads, head_dim] contiguous
  // The same rows in fp32 instead of `out` (not used then): a partial state that is merged
  // again (DCP, KVP, CP: DESIGN.md §3) keeps fp32 until the last merge rounds it to bf16 once.
  // The values are exactly those that `out` would hold before the rounding. Runs on the
  // portable kernel (the Hopper prefill kernel writes bf16 only).
  float* out_f32 = nullptr;
  // [total_q, num_q_heads]: log Σ_{visible j} exp(scale · q·k_j), natural log; −inf when no
  // key is visible (and then out = 0). May be null.
  float* lse = nullptr;
  const __nv_bfloat16* k_cache = nullptr;  // [num_blocks, block_size, num_kv_heads, head_dim]
  const __nv_bfloat16* v_cache = nullptr;
  int64_t block_size = 16;  // any value >= 1
  int64_t num_seqs = 0;
  // Device arrays, as cpu::PagedAttentionParams:
  const int64_t* q_begin = nullptr;       // [num_seqs + 1] cumulative query-token offsets
  const int64_t* context_lens = nullptr;  // [num_seqs] keys 0..context_len−1 (this step's already written)
  const int32_t* block_tables = nullptr;  // [num_seqs, block_table_stride]
  int64_t block_table_stride = 0;
  // Host-side bounds that size the grid (as vLLM's max_seqlen_q/k): the largest num_q and
  // context_len of the batch. max_num_q == 1 picks the decode shape.
  int64_t max_num_q = 0, max_context_len = 0;
  // GQA/MQA: q head h uses kv head h / (Hq/Hkv). head_dim 16, 32, 64 or 128.
  int64_t num_q_heads = 0, num_kv_heads = 0, head_dim = 0;
  float scale = 0;  // 0 = 1/sqrt(head_dim)
  // Query i of sequence s sits at position context_lens[s] − num_q(s) + i; the key at
  // position p is visible iff p ≤ that position. causal = false: every key is visible.
  bool causal = true;
  // Device [total_q], optional: query i sees keys 0..causal_lens[i]−1 instead (causal only),
  // non-decreasing within a sequence — a rank's share of a sequence's keys (DCP, KVP), whose
  // key indices are not positions. Runs on the portable kernel.
  const int32_t* causal_lens = nullptr;
  // Flash-decoding: keys per partition (rounded up to a multiple of 64). 0 = automatic
  // (decode: partitions that put 256 / head_dim blocks on every SM, docs/cuda.md; prefill:
  // split only when the work items are fewer than ~2 waves of the GPU); > 0 forces it,
  // which tests use to exercise the split path.
  int64_t kv_partition_size = 0;
  // Device scratch for the partial outputs when the keys are split; see
  // paged_attention_workspace_bytes. May be null when that returns 0.
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

// Bytes of workspace the call with these parameters needs (0 when it does not split).
// Depends on the host fields only (sizes, max_num_q, max_context_len, kv_partition_size,
// total_q) and the current device's multiprocessor count.
size_t paged_attention_workspace_bytes(const PagedAttentionParams& p, int64_t total_q);

// Enqueues the attention on `stream`. total_q = q_begin[num_seqs] (host copy). Throws
// std::invalid_argument when Hq is not a multiple of Hkv, head_dim is not 16, 32, 64 or 128,
// block_size < 1, or the workspace is too small. Returns the first launch error.
cudaError_t paged_attention(const PagedAttentionParams& p, int64_t total_q, cudaStream_t stream);

}  // namespace longctx::cuda
