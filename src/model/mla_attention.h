// DeepSeek-V3 multi-head latent attention on the CPU, in the absorbed form:
//   c = RMSNorm(x·W_dkvᵀ[:kv_lora]),  k_pe = rope(x·W_dkvᵀ[kv_lora:])     (cached: [c | k_pe])
//   q = (q LoRA) x → [H, nope + rope];  q_abs[h] = q_nope[h] · W_uk[h]     (kv_lora dims)
//   attention of [q_abs | rope(q_pe)] over the cached [c | k_pe] as MQA (one latent
//   "head" of kv_lora + rope dims, K and V the same memory), scale 1/√(nope + rope);
//   the output's first kv_lora dims are Σ p·c, and out[h] = that · W_uv[h]ᵀ.
// The cache holds (kv_lora + rope) floats per token per layer — never per-head K/V.
#pragma once

#include <cstdint>

#include "model/config.h"
#include "model/dense_weights.h"
#include "model/forward_batch.h"
#include "model/paged_kv_cache.h"

namespace longctx {

// residual += o_proj(attention(normed)) for every token of `batch`; writes the new
// tokens' latents into `cache` at their slots.
void mla_attention_forward(const ModelConfig& cfg, const DenseLayerWeights& lw, const double* inv_freq,
                           const float* normed, const ForwardBatch& batch, PagedKVCache& cache, int64_t layer,
                           float* residual);

// The per-token steps of the absorbed form, shared by the single-rank forward and the
// sharded one (sharded_mla_attention.h) for `h` query heads: all of them, or a TP rank's
// share, whose rows/slices of q_b (q_proj), k_up_t and v_up `lw` holds.

// q [t, h, nope + rope] (q LoRA or q_proj) and the latents kv [t, kv_lora + rope]
// (normed compressed kv, then k_pe), the rope parts of both roped at `positions`.
void mla_queries_and_latents(const ModelConfig& cfg, const DenseLayerWeights& lw, const double* inv_freq,
                             const float* normed, int64_t t, const int32_t* positions, int64_t h, float* q,
                             float* kv);

// Absorbed queries qabs [t, h, kv_lora + rope]: q_nope[h] · W_uk[h], then q_pe as is.
void mla_absorb_queries(const ModelConfig& cfg, const DenseLayerWeights& lw, const float* q, int64_t t,
                        int64_t h, float* qabs);

// heads [t, h, v_head_dim]: the first kv_lora dims of the attention output over the
// latents, latent_out [t, h, kv_lora + rope], times W_uv[first_head + j]ᵀ for head j.
void mla_value_heads(const ModelConfig& cfg, const DenseLayerWeights& lw, const float* latent_out, int64_t t,
                     int64_t h, int64_t first_head, float* heads);

}  // namespace longctx
