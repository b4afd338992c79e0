// ModelShape: the few numbers of a model that price a step (DESIGN.md §6) — parameters
// that every token multiplies, bytes of weights a step reads, attention FLOPs per
// query-key pair and KV bytes per token. Derived once from a ModelConfig; no tensors.
#pragma once

#include <cstdint>

#include "model/config.h"

namespace longctx {

struct ModelShape {
  int64_t num_layers = 0;
  int64_t hidden_size = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;    // 1 for MLA (one latent "head" shared by all query heads)
  double bytes_per_param = 2;  // bf16 weights
  // Parameters multiplied by each token in the layers (attention projections, MLP or the
  // activated experts); the LM head is priced once per sequence (only sampled rows).
  double layer_params_per_token = 0;
  double lm_head_params = 0;
  // Weights a decode step reads once per step: dense layers + LM head; MoE adds the
  // experts that the batch's tokens touch (see expert_params / num_experts).
  double dense_weight_params = 0;
  double expert_params = 0;  // one expert's weights summed over the MoE layers
  int64_t num_experts = 0, experts_per_token = 0;
  // 2 FLOPs per multiply-add: QKᵀ and PV summed over heads and layers.
  double attn_flops_per_pair = 0;
  double kv_bytes_per_token = 0;  // K and V (or the MLA latent) of all layers
  int64_t max_position_embeddings = 0;

  // Bytes of all weights (what must fit in memory).
  double weight_bytes() const {
    return (dense_weight_params + expert_params * static_cast<double>(num_experts)) * bytes_per_param;
  }
};

// `bytes_per_element` is the serving dtype (2 for bf16) for weights and KV alike.
ModelShape model_shape(const ModelConfig& c, double bytes_per_element = 2);

}  // namespace longctx
