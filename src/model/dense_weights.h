// Weights of the Llama-family decoders (LlamaForCausalLM, Qwen2ForCausalLM,
// Qwen3ForCausalLM, and with a routed MLP MixtralForCausalLM, Qwen3MoeForCausalLM), loaded from a Checkpoint with every shape checked against the
// config. Projections that run on the same input are fused at load (q|k|v into one
// matrix, gate|up into one) so a layer is four GEMMs. Matrices are kept in the
// checkpoint's dtype or converted to `dtype`; norms and biases are always fp32.
#pragma once

#include <optional>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "model/config.h"
#include "model/safetensors.h"

namespace longctx {

// One expert of a mixture-of-experts MLP (Mixtral w1|w3 → gate_up, w2 → down).
struct ExpertWeights {
  Tensor gate_up;  // [2·moe_intermediate, hidden]
  Tensor down;     // [hidden, moe_intermediate]
};

struct DenseLayerWeights {
  Tensor input_norm;     // f32 [hidden]
  Tensor qkv;            // [(Hq + 2·Hkv)·D, hidden]
  Tensor qkv_bias;       // f32 [(Hq + 2·Hkv)·D] or undefined
  Tensor q_norm, k_norm; // f32 [D] (qwen3) or undefined
  Tensor o_proj;         // [hidden, Hq·D]
  Tensor o_bias;         // f32 [hidden]: llama attention_bias only
  Tensor post_attention_norm;  // f32 [hidden]
  Tensor gate_up;        // [2·intermediate, hidden]
  Tensor down;           // [hidden, intermediate]
  Tensor gate_up_bias, down_bias;  // f32, llama mlp_bias only
  // Mixture of experts (Mixtral, Qwen3-MoE): when `experts` is non-empty the layer's MLP
  // is routed — `router` f32 [num_experts, hidden] — and gate_up/down are unused.
  Tensor router;
  std::vector<ExpertWeights> experts;
  Tensor router_bias;            // f32 [num_experts]: DeepSeek-V3 e_score_correction_bias
  ExpertWeights shared_expert;   // DeepSeek-V3 shared experts (one fused MLP), or empty

  // Multi-head latent attention (DeepSeek-V3); qkv/q_norm/k_norm are unused then.
  Tensor q_a, q_a_norm, q_b;  // q LoRA: [q_lora, hidden], f32 [q_lora], [H·(nope+rope), q_lora]
  Tensor q_proj;              // without q LoRA: [H·(nope+rope), hidden]
  Tensor kv_a;                // [kv_lora + rope, hidden]
  Tensor kv_a_norm;           // f32 [kv_lora]
  // kv_b_proj split per head for the absorbed form: k_up_t[h] = W_uk[h]ᵀ, v_up[h] = W_uv[h].
  Tensor k_up_t;  // f32 [H, kv_lora, nope]
  Tensor v_up;    // f32 [H, v_head_dim, kv_lora]
  bool is_moe() const { return !experts.empty(); }
};

struct DenseWeights {
  Tensor embed_tokens;  // [vocab, hidden]
  std::vector<DenseLayerWeights> layers;
  Tensor final_norm;  // f32 [hidden]
  Tensor lm_head;     // [vocab, hidden]; shares embed_tokens when tied
};

// dtype: keep each matrix in the file's dtype when unset.
// Whether layer `layer` has a routed MLP (Qwen3-MoE's decoder_sparse_step and
// mlp_only_layers; every layer of Mixtral).
bool is_moe_layer(const ModelConfig& cfg, int64_t layer);

Result<DenseWeights> load_dense_weights(const Checkpoint& ckpt, const ModelConfig& cfg,
                                        std::optional<DType> dtype);

}  // namespace longctx
