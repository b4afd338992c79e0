#include "model/presets.h"

#include <cmath>
#include <fstream>
#include <functional>

#include "core/dtype.h"
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

// Counter-based uniform noise: element i of a tensor depends only on (seed, name, i),
// so any chunking and any thread count write the same file.
uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

std::vector<std::string> model_preset_names() {
  return {"qwen3/tiny", "qwen3/0.6b", "qwen3/8b", "qwen2/tiny", "llama/tiny", "llama/8b"};
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
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    if (!fs::exists(tok_dir / f))
      return not_found("tokenizer file " + (tok_dir / f).string() +
                       " is missing (run scripts/fetch_tokenizers.sh, or pass --tokenizers-dir)");
  std::error_code ec;
  fs::create_directories(opts.out_dir, ec);
  if (ec) return invalid_argument("cannot create --out " + opts.out_dir.string() + ": " + ec.message());

  json cfg = preset.config;
  cfg["torch_dtype"] = opts.dtype;
  std::ofstream(opts.out_dir / "config.json") << cfg.dump(2) << "\n";
  json gen = {{"bos_token_id", cfg["bos_token_id"]}, {"eos_token_id", cfg["eos_token_id"]}};
  std::ofstream(opts.out_dir / "generation_config.json") << gen.dump(2) << "\n";
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) {
    fs::copy_file(tok_dir / f, opts.out_dir / f, fs::copy_options::overwrite_existing, ec);
    if (ec) return internal_error("copying " + (tok_dir / f).string() + ": " + ec.message());
  }

  const int64_t hidden = cfg["hidden_size"], layers = cfg["num_hidden_layers"], heads = cfg["num_attention_heads"];
  const int64_t kv = cfg["num_key_value_heads"], inter = cfg["intermediate_size"], vocab = cfg["vocab_size"];
  const int64_t d = cfg.contains("head_dim") ? cfg["head_dim"].get<int64_t>() : hidden / heads;
  const bool qwen3 = preset.arch == "qwen3", bias = cfg.value("attention_bias", false);

  std::vector<SafetensorsTensorSpec> specs;
  auto add = [&](const std::string& name, Shape shape) { specs.push_back({name, dtype, std::move(shape)}); };
  add("model.embed_tokens.weight", {vocab, hidden});
  add("model.norm.weight", {hidden});
  if (!cfg["tie_word_embeddings"].get<bool>()) add("lm_head.weight", {vocab, hidden});
  for (int64_t l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {hidden});
    add(p + "post_attention_layernorm.weight", {hidden});
    add(p + "self_attn.q_proj.weight", {heads * d, hidden});
    add(p + "self_attn.k_proj.weight", {kv * d, hidden});
    add(p + "self_attn.v_proj.weight", {kv * d, hidden});
    add(p + "self_attn.o_proj.weight", {hidden, heads * d});
    if (bias) {
      add(p + "self_attn.q_proj.bias", {heads * d});
      add(p + "self_attn.k_proj.bias", {kv * d});
      add(p + "self_attn.v_proj.bias", {kv * d});
    }
    if (qwen3) {
      add(p + "self_attn.q_norm.weight", {d});
      add(p + "self_attn.k_norm.weight", {d});
    }
    add(p + "mlp.gate_proj.weight", {inter, hidden});
    add(p + "mlp.up_proj.weight", {inter, hidden});
    add(p + "mlp.down_proj.weight", {hidden, inter});
  }

  // Norm weights 1 (± a little noise), everything else uniform with std init_std.
  const float half_width = opts.init_std * std::sqrt(3.0f);
  auto fill = [&](const SafetensorsTensorSpec& s, int64_t first, int64_t count, void* dst) {
    const bool norm = s.name.find("norm") != std::string::npos;
    const uint64_t stream = splitmix64(opts.seed ^ std::hash<std::string>{}(s.name));
    std::vector<float> values(static_cast<size_t>(count));
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; ++i) {
      const double u = static_cast<double>(splitmix64(stream + static_cast<uint64_t>(first + i)) >> 11) * 0x1.0p-53;
      const float x = static_cast<float>(2.0 * u - 1.0);
      values[static_cast<size_t>(i)] = norm ? 1.0f + 0.1f * x : half_width * x;
    }
    convert_elements(values.data(), DType::kF32, dst, s.dtype, static_cast<size_t>(count));
  };
  return write_safetensors_streaming(opts.out_dir / "model.safetensors", std::move(specs), fill,
                                     {{"format", "pt"}});
}

}  // namespace longctx
