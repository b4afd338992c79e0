#include "model/presets.h"

#include <cmath>
#include <fstream>
#include <functional>

#include "core/dtype.h"
#include "model/config.h"
#include "model/dense_weights.h"
#include "model/safetensors_writer.h"

namespace longctx {
namespace {

using nlohmann::json;

struct Shape8 {
  int64_t hidden, layers, heads, kv_heads, head_dim, intermediate, vocab, max_pos;
  bool tied;
};

json qwen_config(const std::string& arch, const Shape8& s) {
  const bool q3 = arch == "qwen3";
  json c = {
      {"architectures", {q3 ? "Qwen3ForCausalLM" : "Qwen2ForCausalLM"}},
      {"model_type", q3 ? "qwen3" : "qwen2"},
      {"hidden_size", s.hidden},
      {"num_hidden_layers", s.layers},
      {"num_attention_heads", s.heads},
      {"num_key_value_heads", s.kv_heads},
      {"intermediate_size", s.intermediate},
      {"vocab_size", s.vocab},
      {"max_position_embeddings", s.max_pos},
      {"rms_norm_eps", 1e-6},
      {"rope_theta", 1000000.0},
      {"rope_scaling", nullptr},
      {"tie_word_embeddings", s.tied},
      {"hidden_act", "silu"},
      {"attention_bias", !q3},
      {"bos_token_id", 151643},
      {"eos_token_id", 151645},
      {"torch_dtype", "bfloat16"},
  };
  if (q3) c["head_dim"] = s.head_dim;
  return c;
}

json llama_config(const Shape8& s) {
  return {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"hidden_size", s.hidden},
      {"num_hidden_layers", s.layers},
      {"num_attention_heads", s.heads},
      {"num_key_value_heads", s.kv_heads},
      {"head_dim", s.head_dim},
      {"intermediate_size", s.intermediate},
      {"vocab_size", s.vocab},
      {"max_position_embeddings", s.max_pos},
      {"rms_norm_eps", 1e-5},
      {"rope_theta", 500000.0},
      {"rope_scaling",
       {{"rope_type", "llama3"},
        {"factor", 8.0},
        {"low_freq_factor", 1.0},
        {"high_freq_factor", 4.0},
        {"original_max_position_embeddings", 8192}}},
      {"tie_word_embeddings", s.tied},
      {"hidden_act", "silu"},
      {"attention_bias", false},
      {"mlp_bias", false},
      {"bos_token_id", 128000},
      {"eos_token_id", {128001, 128008, 128009}},
      {"torch_dtype", "bfloat16"},
  };
}

// Mixtral: Llama-style attention (no bias, no q/k norm), every layer a routed MLP of
// num_local_experts full-size experts (intermediate_size), softmax top-k renormalised.
json mixtral_config(const Shape8& s, int64_t experts, int64_t top_k, int64_t bos, json eos) {
  return {
      {"architectures", {"MixtralForCausalLM"}},
      {"model_type", "mixtral"},
      {"hidden_size", s.hidden},
      {"num_hidden_layers", s.layers},
      {"num_attention_heads", s.heads},
      {"num_key_value_heads", s.kv_heads},
      {"head_dim", s.head_dim},
      {"intermediate_size", s.intermediate},
      {"num_local_experts", experts},
      {"num_experts_per_tok", top_k},
      {"vocab_size", s.vocab},
      {"max_position_embeddings", s.max_pos},
      {"rms_norm_eps", 1e-5},
      {"rope_theta", 1000000.0},
      {"sliding_window", nullptr},
      {"tie_word_embeddings", s.tied},
      {"hidden_act", "silu"},
      {"router_aux_loss_coef", 0.02},
      {"bos_token_id", bos},
      {"eos_token_id", std::move(eos)},
      {"torch_dtype", "bfloat16"},
  };
}

// Qwen3-MoE: Qwen3 attention (q/k RMSNorm), routed MLP in every layer (decoder_sparse_step
// 1, no mlp_only_layers) of small experts (moe_intermediate_size).
json qwen3_moe_config(const Shape8& s, int64_t experts, int64_t top_k, int64_t moe_inter) {
  json c = qwen_config("qwen3", s);
  c["architectures"] = {"Qwen3MoeForCausalLM"};
  c["model_type"] = "qwen3_moe";
  c["num_experts"] = experts;
  c["num_experts_per_tok"] = top_k;
  c["moe_intermediate_size"] = moe_inter;
  c["norm_topk_prob"] = true;
  c["decoder_sparse_step"] = 1;
  c["mlp_only_layers"] = json::array();
  c["router_aux_loss_coef"] = 0.001;
  c["sliding_window"] = nullptr;
  c["use_sliding_window"] = false;
  return c;
}

struct DeepseekShape {
  int64_t hidden, layers, heads, intermediate, moe_intermediate, vocab, max_pos;
  int64_t q_lora, kv_lora, rope, nope, v;
  int64_t experts, shared, top_k, n_group, topk_group, first_dense;
  bool tied;
};

// DeepSeek-V3: MLA attention (one latent of kv_lora_rank + qk_rope_head_dim per token),
// first_k_dense_replace dense layers, then routed layers with shared experts and biased-
// sigmoid, group-limited routing. The published file's yarn rope_scaling (factor 40 over
// 4096 positions) is left out: the config parser supports only default and llama3 rope,
// and no number the planner or the benchmarks use depends on it.
json deepseek_v3_config(const DeepseekShape& s) {
  return {
      {"architectures", {"DeepseekV3ForCausalLM"}},
      {"model_type", "deepseek_v3"},
      {"hidden_size", s.hidden},
      {"num_hidden_layers", s.layers},
      {"num_attention_heads", s.heads},
      {"num_key_value_heads", s.heads},
      {"intermediate_size", s.intermediate},
      {"moe_intermediate_size", s.moe_intermediate},
      {"vocab_size", s.vocab},
      {"max_position_embeddings", s.max_pos},
      {"q_lora_rank", s.q_lora},
      {"kv_lora_rank", s.kv_lora},
      {"qk_rope_head_dim", s.rope},
      {"qk_nope_head_dim", s.nope},
      {"v_head_dim", s.v},
      {"n_routed_experts", s.experts},
      {"n_shared_experts", s.shared},
      {"num_experts_per_tok", s.top_k},
      {"n_group", s.n_group},
      {"topk_group", s.topk_group},
      {"topk_method", "noaux_tc"},
      {"first_k_dense_replace", s.first_dense},
      {"moe_layer_freq", 1},
      {"norm_topk_prob", true},
      {"routed_scaling_factor", 2.5},
      {"scoring_func", "sigmoid"},
      {"rms_norm_eps", 1e-6},
      {"rope_theta", 10000.0},
      {"rope_scaling", nullptr},
      {"attention_bias", false},
      {"tie_word_embeddings", s.tied},
      {"hidden_act", "silu"},
      {"bos_token_id", 0},
      {"eos_token_id", 1},
      {"torch_dtype", "bfloat16"},
  };
}

// Counter-based uniform noise: element i of a tensor depends only on (seed, name, i),
// so any chunking and any thread count write the same file.
uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The tensors the loader (dense_weights.cpp) reads for `c`, with their shapes: Hugging
// Face names as the published checkpoints have them.
std::vector<std::pair<std::string, Shape>> checkpoint_tensors(const ModelConfig& c) {
  std::vector<std::pair<std::string, Shape>> t;
  auto add = [&](const std::string& name, Shape shape) { t.emplace_back(name, std::move(shape)); };
  const int64_t h = c.hidden_size, heads = c.num_heads, kv = c.num_kv_heads, d = c.head_dim;
  add("model.embed_tokens.weight", {c.vocab_size, h});
  add("model.norm.weight", {h});
  if (!c.tie_word_embeddings) add("lm_head.weight", {c.vocab_size, h});
  auto mlp = [&](const std::string& p, int64_t inter, const char* gate, const char* up, const char* down) {
    add(p + gate, {inter, h});
    add(p + up, {inter, h});
    add(p + down, {h, inter});
  };
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {h});
    add(p + "post_attention_layernorm.weight", {h});
    if (c.is_mla()) {
      const int64_t qk = c.qk_nope_head_dim + c.qk_rope_head_dim;
      if (c.q_lora_rank > 0) {
        add(p + "self_attn.q_a_proj.weight", {c.q_lora_rank, h});
        add(p + "self_attn.q_a_layernorm.weight", {c.q_lora_rank});
        add(p + "self_attn.q_b_proj.weight", {heads * qk, c.q_lora_rank});
      } else {
        add(p + "self_attn.q_proj.weight", {heads * qk, h});
      }
      add(p + "self_attn.kv_a_proj_with_mqa.weight", {c.kv_lora_rank + c.qk_rope_head_dim, h});
      add(p + "self_attn.kv_a_layernorm.weight", {c.kv_lora_rank});
      add(p + "self_attn.kv_b_proj.weight", {heads * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank});
      add(p + "self_attn.o_proj.weight", {h, heads * c.v_head_dim});
    } else {
      add(p + "self_attn.q_proj.weight", {heads * d, h});
      add(p + "self_attn.k_proj.weight", {kv * d, h});
      add(p + "self_attn.v_proj.weight", {kv * d, h});
      add(p + "self_attn.o_proj.weight", {h, heads * d});
      if (c.qkv_bias) {
        add(p + "self_attn.q_proj.bias", {heads * d});
        add(p + "self_attn.k_proj.bias", {kv * d});
        add(p + "self_attn.v_proj.bias", {kv * d});
      }
      if (c.qk_norm) {
        add(p + "self_attn.q_norm.weight", {d});
        add(p + "self_attn.k_norm.weight", {d});
      }
    }
    if (!is_moe_layer(c, l)) {
      mlp(p + "mlp.", c.intermediate_size, "gate_proj.weight", "up_proj.weight", "down_proj.weight");
      continue;
    }
    const bool mixtral = c.arch == Architecture::kMixtral;
    const std::string moe = p + (mixtral ? "block_sparse_moe." : "mlp.");
    add(moe + "gate.weight", {c.num_experts, h});
    if (c.arch == Architecture::kDeepseekV3) {
      add(moe + "gate.e_score_correction_bias", {c.num_experts});
      if (c.n_shared_experts > 0)
        mlp(moe + "shared_experts.", c.moe_intermediate_size * c.n_shared_experts, "gate_proj.weight",
            "up_proj.weight", "down_proj.weight");
    }
    for (int64_t e = 0; e < c.num_experts; ++e) {
      const std::string x = moe + "experts." + std::to_string(e) + ".";
      if (mixtral) {
        mlp(x, c.moe_intermediate_size, "w1.weight", "w3.weight", "w2.weight");
      } else {
        mlp(x, c.moe_intermediate_size, "gate_proj.weight", "up_proj.weight", "down_proj.weight");
      }
    }
  }
  return t;
}

}  // namespace

std::vector<std::string> model_preset_names() {
  return {"qwen3/tiny",     "qwen3/0.6b",        "qwen3/8b",         "qwen2/tiny",
          "llama/tiny",     "llama/8b",          "mixtral/tiny",     "mixtral/8x7b",
          "qwen3_moe/tiny", "qwen3_moe/30b-a3b", "deepseek_v3/tiny", "deepseek_v3/671b"};
}

Result<ModelPreset> find_model_preset(const std::string& arch, const std::string& preset) {
  ModelPreset p{arch, preset, {}, ""};
  if (arch == "qwen3" || arch == "qwen2") {
    p.tokenizer_name = "qwen3";
    if (preset == "tiny") {
      p.config = qwen_config(arch, {128, 2, 4, 2, 32, 384, 151936, 40960, true});
    } else if (preset == "0.6b" && arch == "qwen3") {  // Qwen3-0.6B
      p.config = qwen_config(arch, {1024, 28, 16, 8, 128, 3072, 151936, 40960, true});
    } else if (preset == "8b" && arch == "qwen3") {  // Qwen3-8B
      p.config = qwen_config(arch, {4096, 36, 32, 8, 128, 12288, 151936, 40960, false});
    }
  } else if (arch == "llama") {
    p.tokenizer_name = "llama3_1";
    if (preset == "tiny") {
      p.config = llama_config({128, 2, 4, 2, 32, 384, 128256, 131072, true});
    } else if (preset == "8b") {  // Llama-3.1-8B
      p.config = llama_config({4096, 32, 32, 8, 128, 14336, 128256, 131072, false});
    }
  } else if (arch == "mixtral") {
    if (preset == "tiny") {
      // Mixtral's own tokenizer (SentencePiece, 32000 tokens) is not among the fetched
      // ones; the tiny model borrows Llama 3.1's, with its vocabulary and special ids.
      p.tokenizer_name = "llama3_1";
      p.config = mixtral_config({128, 2, 4, 2, 32, 256, 128256, 32768, true}, 4, 2, 128000,
                                {128001, 128008, 128009});
    } else if (preset == "8x7b") {  // Mixtral-8x7B-v0.1: written without tokenizer files
      p.config = mixtral_config({4096, 32, 32, 8, 128, 14336, 32000, 32768, false}, 8, 2, 1, 2);
    }
  } else if (arch == "qwen3_moe") {
    p.tokenizer_name = "qwen3";
    if (preset == "tiny") {
      p.config = qwen3_moe_config({128, 2, 4, 2, 32, 384, 151936, 40960, true}, 8, 2, 64);
    } else if (preset == "30b-a3b") {  // Qwen3-30B-A3B
      p.config = qwen3_moe_config({2048, 48, 32, 4, 128, 6144, 151936, 40960, false}, 128, 8, 768);
    }
  } else if (arch == "deepseek_v3") {
    p.tokenizer_name = "deepseek_v3";
    if (preset == "tiny") {  // one dense layer, then routed layers; 8 experts in 4 groups
      p.config =
          deepseek_v3_config({128, 3, 4, 256, 64, 129280, 16384, 64, 32, 16, 32, 32, 8, 1, 2, 4, 2, 1, true});
    } else if (preset == "671b") {  // DeepSeek-V3 (the main model; the MTP layer is not loaded)
      p.config = deepseek_v3_config(
          {7168, 61, 128, 18432, 2048, 129280, 163840, 1536, 512, 64, 128, 128, 256, 1, 8, 8, 4, 3, false});
    }
  }
  if (p.config.is_null()) {
    std::string names;
    for (const auto& n : model_preset_names()) names += (names.empty() ? "" : ", ") + n;
    return invalid_argument("no preset '" + preset + "' for --arch " + arch + " (available: " + names + ")");
  }
  return p;
}

Status make_model(const ModelPreset& preset, const MakeModelOptions& opts) {
  namespace fs = std::filesystem;
  LONGCTX_ASSIGN_OR_RETURN(DType dtype, parse_dtype(opts.dtype));
  if (dtype != DType::kBF16 && dtype != DType::kF16 && dtype != DType::kF32)
    return invalid_argument("--dtype " + opts.dtype + ": weights must be bfloat16, float16 or float32");
  const fs::path tok_dir = opts.tokenizers_dir / preset.tokenizer_name;
  if (!preset.tokenizer_name.empty())
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      if (!fs::exists(tok_dir / f))
        return not_found("tokenizer file " + (tok_dir / f).string() +
                         " is missing (run scripts/fetch_tokenizers.sh, or pass --tokenizers-dir)");
  json cfg = preset.config;
  cfg["torch_dtype"] = opts.dtype;
  LONGCTX_ASSIGN_OR_RETURN(ModelConfig mc,
                           parse_model_config(cfg, "preset " + preset.arch + "/" + preset.preset));
  std::error_code ec;
  fs::create_directories(opts.out_dir, ec);
  if (ec) return invalid_argument("cannot create --out " + opts.out_dir.string() + ": " + ec.message());

  std::ofstream(opts.out_dir / "config.json") << cfg.dump(2) << "\n";
  json gen = {{"bos_token_id", cfg["bos_token_id"]}, {"eos_token_id", cfg["eos_token_id"]}};
  std::ofstream(opts.out_dir / "generation_config.json") << gen.dump(2) << "\n";
  if (!preset.tokenizer_name.empty())
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) {
      fs::copy_file(tok_dir / f, opts.out_dir / f, fs::copy_options::overwrite_existing, ec);
      if (ec) return internal_error("copying " + (tok_dir / f).string() + ": " + ec.message());
    }

  std::vector<SafetensorsTensorSpec> specs;
  for (auto& [name, shape] : checkpoint_tensors(mc)) specs.push_back({name, dtype, std::move(shape)});

  // Norm weights 1 (± a little noise), everything else uniform with std init_std.
  const float half_width = opts.init_std * std::sqrt(3.0f);
  auto fill = [&](const SafetensorsTensorSpec& s, int64_t first, int64_t count, void* dst) {
    const bool norm = s.name.find("norm") != std::string::npos;
    const uint64_t stream = splitmix64(opts.seed ^ std::hash<std::string>{}(s.name));
    std::vector<float> values(static_cast<size_t>(count));
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; ++i) {
      const double u =
          static_cast<double>(splitmix64(stream + static_cast<uint64_t>(first + i)) >> 11) * 0x1.0p-53;
      const float x = static_cast<float>(2.0 * u - 1.0);
      values[static_cast<size_t>(i)] = norm ? 1.0f + 0.1f * x : half_width * x;
    }
    convert_elements(values.data(), DType::kF32, dst, s.dtype, static_cast<size_t>(count));
  };
  return write_safetensors_streaming(opts.out_dir / "model.safetensors", std::move(specs), fill,
                                     {{"format", "pt"}});
}

}  // namespace longctx
