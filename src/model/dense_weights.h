// Weights of the dense Llama family (LlamaForCausalLM, Qwen2ForCausalLM,
// Qwen3ForCausalLM), loaded from a Checkpoint with every shape checked against the
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
};

struct DenseWeights {
  Tensor embed_tokens;  // [vocab, hidden]
  std::vector<DenseLayerWeights> layers;
  Tensor final_norm;  // f32 [hidden]
  Tensor lm_head;     // [vocab, hidden]; shares embed_tokens when tied
};

// dtype: keep each matrix in the file's dtype when unset.
Result<DenseWeights> load_dense_weights(const Checkpoint& ckpt, const ModelConfig& cfg,
                                        std::optional<DType> dtype);

}  // namespace longctx
