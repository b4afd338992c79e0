#include "perf/model_shape.h"

#include <algorithm>

namespace longctx {

ModelShape model_shape(const ModelConfig& c, double bytes_per_element) {
  ModelShape s;
  const double h = static_cast<double>(c.hidden_size), L = static_cast<double>(c.num_layers);
  const double hq = static_cast<double>(c.num_heads), hkv = static_cast<double>(c.num_kv_heads);
  const double d = static_cast<double>(c.head_dim);
  s.num_layers = c.num_layers;
  s.hidden_size = c.hidden_size;
  s.num_heads = c.num_heads;
  s.bytes_per_param = bytes_per_element;
  s.max_position_embeddings = c.max_position_embeddings;

  double attn_params = 0;
  if (c.is_mla()) {  // DeepSeek-V3 MLA: the latent is the cache; attention runs absorbed
    const double qk = static_cast<double>(c.qk_nope_head_dim + c.qk_rope_head_dim);
    const double v = static_cast<double>(c.v_head_dim), lora = static_cast<double>(c.kv_lora_rank);
    const double rope = static_cast<double>(c.qk_rope_head_dim);
    const double q = c.q_lora_rank > 0 ? h * static_cast<double>(c.q_lora_rank) +
                                             static_cast<double>(c.q_lora_rank) * hq * qk
                                       : h * hq * qk;
    attn_params =
        q + h * (lora + rope) + lora * hq * (static_cast<double>(c.qk_nope_head_dim) + v) + hq * v * h;
    s.num_kv_heads = 1;
    s.attn_flops_per_pair = 2.0 * L * hq * ((lora + rope) + lora);
    s.kv_bytes_per_token = L * (lora + rope) * bytes_per_element;
  } else {
    attn_params = h * hq * d + 2 * h * hkv * d + hq * d * h;
    s.num_kv_heads = c.num_kv_heads;
    s.attn_flops_per_pair = 4.0 * L * hq * d;
    s.kv_bytes_per_token = 2.0 * L * hkv * d * bytes_per_element;
  }
  const double dense_mlp = 3.0 * h * static_cast<double>(c.intermediate_size);
  if (c.is_moe()) {
    const double k_dense = static_cast<double>(std::min<int64_t>(c.first_k_dense_replace, c.num_layers));
    const double moe_layers = L - k_dense;
    const double expert = 3.0 * h * static_cast<double>(c.moe_intermediate_size);
    const double shared = static_cast<double>(c.n_shared_experts) * expert;
    const double router = h * static_cast<double>(c.num_experts);
    s.num_experts = c.num_experts;
    s.experts_per_token = c.num_experts_per_tok;
    s.expert_params = moe_layers * expert;
    s.dense_weight_params = L * attn_params + k_dense * dense_mlp + moe_layers * (shared + router);
    s.layer_params_per_token =
        s.dense_weight_params + static_cast<double>(c.num_experts_per_tok) * s.expert_params;
  } else {
    s.dense_weight_params = L * (attn_params + dense_mlp);
    s.layer_params_per_token = s.dense_weight_params;
  }
  s.lm_head_params = h * static_cast<double>(c.vocab_size);
  s.dense_weight_params += s.lm_head_params;
  return s;
}

}  // namespace longctx
