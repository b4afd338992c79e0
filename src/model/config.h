// ModelConfig: config.json of a Hugging Face checkpoint, parsed and validated once.
// Both rope forms found in real files are accepted: transformers 4.x top-level
// `rope_theta` / `rope_scaling`, and transformers 5.x `rope_parameters`.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "core/status.h"

namespace longctx {

enum class Architecture { kLlama, kQwen2, kQwen3, kMixtral, kQwen3Moe, kDeepseekV3 };
const char* architecture_name(Architecture a);  // "LlamaForCausalLM", ...

struct RopeConfig {
  std::string type = "default";  // "default" | "llama3" (others are rejected with a clear error)
  double theta = 10000.0;
  // llama3 scaling (Llama 3.1): factor, low/high frequency factors, original context.
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  Architecture arch = Architecture::kLlama;
  std::string model_type;  // "llama", "qwen2", ...
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;    // num_hidden_layers
  int64_t num_heads = 0;     // num_attention_heads
  int64_t num_kv_heads = 0;  // num_key_value_heads (defaults to num_heads)
  int64_t head_dim = 0;      // explicit head_dim, else hidden_size / num_heads
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  RopeConfig rope;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // qwen2 always; llama's attention_bias
  bool mlp_bias = false;
  bool qk_norm = false;  // qwen3 / qwen3_moe: RMSNorm over each head of q and k
  std::string hidden_act = "silu";
  std::string torch_dtype = "float32";  // "dtype" (5.x) or "torch_dtype" (4.x)
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;  // eos_token_id may be an int or a list

  // Mixture of experts (mixtral, qwen3_moe, deepseek_v3). num_experts = 0: dense.
  int64_t num_experts = 0;  // num_local_experts / num_experts / n_routed_experts
  int64_t num_experts_per_tok = 0;
  int64_t moe_intermediate_size = 0;     // per-expert MLP width (mixtral: = intermediate_size)
  bool norm_topk_prob = false;           // mixtral: always true (softmax over the top-k)
  int64_t decoder_sparse_step = 1;       // qwen3_moe
  std::vector<int64_t> mlp_only_layers;  // qwen3_moe
  int64_t n_shared_experts = 0;          // deepseek_v3
  int64_t n_group = 1, topk_group = 1;   // deepseek_v3 group-limited routing
  double routed_scaling_factor = 1.0;
  std::string scoring_func = "softmax";  // deepseek_v3: "sigmoid" unless the file says otherwise
  int64_t first_k_dense_replace = 0;

  // Multi-head latent attention (deepseek_v3).
  int64_t q_lora_rank = 0;  // 0: no q LoRA (q_proj directly)
  int64_t kv_lora_rank = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t v_head_dim = 0;
  bool rope_interleave = false;

  bool is_moe() const { return num_experts > 0; }
  bool is_mla() const { return arch == Architecture::kDeepseekV3; }
  // Inverse frequencies for rope (rotary_dim / 2 values, rotary_dim = head_dim, or
  // qk_rope_head_dim for MLA), with llama3 scaling applied; in double.
  std::vector<double> rope_inv_freq() const;
  int64_t rotary_dim() const { return is_mla() ? qk_rope_head_dim : head_dim; }
};

// Parses and validates; errors name `source` (the file) and the field.
Result<ModelConfig> parse_model_config(const nlohmann::json& j, const std::string& source);
// Reads DIR/config.json (or a config.json path).
Result<ModelConfig> load_model_config(const std::filesystem::path& dir_or_file);

}  // namespace longctx
