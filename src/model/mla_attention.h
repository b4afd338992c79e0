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

}  // namespace longctx
