// Rotary position embedding fused with the paged KV-cache write, on bf16 (fp32 math).
// One warp per (token, head): it reads the head's rotary part into registers, then writes,
// so q is rotated in place for either layout.
//
// The angle position · inv_freq is formed in double and reduced modulo 2π before the fp32
// sincos: at position 10⁶ an fp32 angle would be off by ~0.06 rad (the CPU backend uses
// double for the same reason, docs/numerics.md).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace longctx::cuda {

enum class RopeStyle {
  // Llama/Qwen: for i < rot/2, with c = cos(pos·inv_freq[i]), s = sin(...):
  //   x'[i] = x[i]·c − x[i+rot/2]·s,   x'[i+rot/2] = x[i+rot/2]·c + x[i]·s.
  kRotateHalf,
  // DeepSeek-V3 (transformers' apply_rotary_pos_emb_interleave): input pairs (x[2i], x[2i+1])
  // are de-interleaved, then rotated as rotate-half, so the OUTPUT is in rotate-half order:
  //   x'[i] = x[2i]·c − x[2i+1]·s,     x'[i+rot/2] = x[2i+1]·c + x[2i]·s.
  // Same as cpu::RopeStyle::kInterleaved; q and k must both go through it.
  kInterleaved,
};

// Largest rotary_dim: each lane keeps its share of one head's rotary part in registers.
inline constexpr int64_t kMaxRotaryDim = 512;

// Cache layout as cpu::write_kv_cache, but bf16: k_cache/v_cache are [num_blocks,
// block_size, num_kv_heads, head_dim]; token i goes to slot slots[i] (= block · block_size +
// offset), i.e. element offset slots[i] · num_kv_heads · head_dim; slots[i] = -1 skips it.
struct RopeKvParams {
  // [num_tokens, num_q_heads, head_dim], token stride q_stride (0 = num_q_heads · head_dim);
  // rotated in place (dims [0, rotary_dim) of each head). May be null (k only).
  __nv_bfloat16* q = nullptr;
  int64_t q_stride = 0;
  // [num_tokens, num_kv_heads, head_dim], token stride kv_stride (0 = num_kv_heads ·
  // head_dim); typically q, k and v point into one fused qkv projection output. k is read
  // only: the rotated k goes to the cache (and, if k_out is set, there too).
  const __nv_bfloat16* k = nullptr;
  const __nv_bfloat16* v = nullptr;
  int64_t kv_stride = 0;
  __nv_bfloat16* k_out = nullptr;  // optional [num_tokens, kv_stride-strided] rotated k; may alias k
  int64_t num_tokens = 0, num_q_heads = 0, num_kv_heads = 0, head_dim = 0;
  int64_t rotary_dim = 0;              // 0 = head_dim; a multiple of 4, <= kMaxRotaryDim
  const int32_t* positions = nullptr;  // [num_tokens] device
  const double* inv_freq = nullptr;    // [rotary_dim / 2] device
  RopeStyle style = RopeStyle::kRotateHalf;
  const int64_t* slots = nullptr;  // [num_tokens] device; null: no cache write
  __nv_bfloat16* k_cache = nullptr;
  __nv_bfloat16* v_cache = nullptr;
};

// Throws std::invalid_argument on a bad rotary_dim or head_dim (odd, > head_dim, not a
// multiple of 4, > kMaxRotaryDim) or when a cache write is asked without k/v/caches.
// Returns the launch error.
cudaError_t rope_kv_write(const RopeKvParams& p, cudaStream_t stream);

}  // namespace longctx::cuda
