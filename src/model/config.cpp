#include "model/config.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <numbers>
#include <optional>
#include <sstream>

namespace longctx {
namespace {

using nlohmann::json;

struct ArchInfo {
  Architecture arch;
  const char* name;
  const char* model_type;
  double default_rope_theta;  // transformers' config default, used when the file has none
};

constexpr ArchInfo kArchs[] = {
    {Architecture::kLlama, "LlamaForCausalLM", "llama", 10000.0},
    {Architecture::kQwen2, "Qwen2ForCausalLM", "qwen2", 10000.0},
    {Architecture::kQwen3, "Qwen3ForCausalLM", "qwen3", 10000.0},
    {Architecture::kMixtral, "MixtralForCausalLM", "mixtral", 1000000.0},
    {Architecture::kQwen3Moe, "Qwen3MoeForCausalLM", "qwen3_moe", 10000.0},
    {Architecture::kDeepseekV3, "DeepseekV3ForCausalLM", "deepseek_v3", 10000.0},
};

const ArchInfo& arch_info(Architecture a) {
  for (const auto& info : kArchs)
    if (info.arch == a) return info;
  return kArchs[0];
}

std::string supported_architectures() {
  std::string out;
  for (const auto& info : kArchs) out += std::string(out.empty() ? "" : ", ") + info.name;
  return out;
}

const char* json_type(const json& v) { return v.type_name(); }

// Reads typed fields of one JSON object. The first error is kept and later reads return
// their fallbacks, so a parser reads every field straight through and checks `error` once.
class FieldReader {
 public:
  FieldReader(const json& obj, const std::string& source, std::string prefix = "")
      : obj_(obj), source_(source), prefix_(std::move(prefix)) {}

  Status error;

  // The value of `key`, or nullptr when absent or null (null means "unset" in HF configs).
  const json* find(const char* key) const {
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  bool has(const char* key) const { return find(key) != nullptr; }

  int64_t integer(const char* key, std::optional<int64_t> fallback = std::nullopt) {
    const json* v = lookup(key, fallback.has_value(), "an integer");
    if (!v) return fallback.value_or(0);
    if (!v->is_number_integer() ||
        (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))) {
      fail_type(key, "an integer", *v);
      return 0;
    }
    return v->get<int64_t>();
  }
  double number(const char* key, std::optional<double> fallback = std::nullopt) {
    const json* v = lookup(key, fallback.has_value(), "a number");
    if (!v) return fallback.value_or(0.0);
    if (!v->is_number()) {
      fail_type(key, "a number", *v);
      return 0.0;
    }
    return v->get<double>();
  }
  bool boolean(const char* key, std::optional<bool> fallback = std::nullopt) {
    const json* v = lookup(key, fallback.has_value(), "a boolean");
    if (!v) return fallback.value_or(false);
    if (!v->is_boolean()) {
      fail_type(key, "a boolean", *v);
      return false;
    }
    return v->get<bool>();
  }
  std::string string(const char* key, std::optional<std::string> fallback = std::nullopt) {
    const json* v = lookup(key, fallback.has_value(), "a string");
    if (!v) return fallback.value_or("");
    if (!v->is_string()) {
      fail_type(key, "a string", *v);
      return "";
    }
    return v->get<std::string>();
  }
  // An integer or a list of integers (eos_token_id); absent or null gives {}.
  std::vector<int64_t> integers(const char* key, bool scalar_allowed) {
    std::vector<int64_t> out;
    const json* v = lookup(key, true, "a list of integers");
    if (!v) return out;
    if (scalar_allowed && v->is_number_integer()) return {v->get<int64_t>()};
    if (!v->is_array()) {
      fail_type(key, scalar_allowed ? "an integer or a list of integers" : "a list of integers", *v);
      return out;
    }
    for (const auto& e : *v) {
      if (!e.is_number_integer()) {
        fail_type(key, "a list of integers", *v);
        return {};
      }
      out.push_back(e.get<int64_t>());
    }
    return out;
  }
  // A nested object (rope_scaling, rope_parameters); absent or null gives nullptr.
  const json* object(const char* key) {
    const json* v = find(key);
    if (v && !v->is_object()) {
      fail_type(key, "an object or null", *v);
      return nullptr;
    }
    return v;
  }

  std::string field(const char* key) const { return prefix_ + key; }
  void fail(Status s) {
    if (error.is_ok()) error = std::move(s);
  }

 private:
  const json* lookup(const char* key, bool optional, const char* what) {
    if (!error.is_ok()) return nullptr;
    const json* v = find(key);
    if (!v && !optional)
      fail(invalid_argument(source_ + ": missing required field '" + field(key) + "' (" + what + ")"));
    return v;
  }
  void fail_type(const char* key, const char* what, const json& v) {
    std::string shown = v.dump();
    if (shown.size() > 40) shown = shown.substr(0, 37) + "...";
    fail(invalid_argument(source_ + ": field '" + field(key) + "' must be " + what + ", got " + json_type(v) +
                          " " + shown));
  }

  const json& obj_;
  const std::string& source_;
  std::string prefix_;
};

Result<Architecture> parse_architecture(const json& j, const std::string& source) {
  auto it = j.find("architectures");
  if (it == j.end() || it->is_null())
    return invalid_argument(source + ": missing required field 'architectures' (a list like [\"" +
                            std::string(kArchs[0].name) + "\"])");
  if (!it->is_array() || it->empty() || !(*it)[0].is_string())
    return invalid_argument(source + ": field 'architectures' must be a non-empty list of strings, got " +
                            it->dump());
  const std::string name = (*it)[0].get<std::string>();
  for (const auto& info : kArchs)
    if (name == info.name) return info.arch;
  return unimplemented(source + ": architecture '" + name +
                       "' (architectures[0]) is not supported; supported: " + supported_architectures());
}

// Rope: transformers 5.x puts theta and scaling in `rope_parameters`; 4.x has top-level
// `rope_theta` and an optional `rope_scaling` (null or {"rope_type"|"type": ..., ...}).
Status parse_rope(const json& j, const std::string& source, Architecture arch, RopeConfig& rope) {
  FieldReader top(j, source);
  const json* params = top.object("rope_parameters");
  const char* params_key = "rope_parameters";
  if (!params) {
    params = top.object("rope_scaling");
    params_key = "rope_scaling";
  }
  LONGCTX_RETURN_IF_ERROR(top.error);
  rope.theta = top.number("rope_theta", arch_info(arch).default_rope_theta);
  LONGCTX_RETURN_IF_ERROR(top.error);
  if (!params) return Status::ok();

  FieldReader p(*params, source, std::string(params_key) + ".");
  if (p.has("rope_theta")) rope.theta = p.number("rope_theta");
  const char* type_key = p.has("rope_type") ? "rope_type" : "type";
  rope.type = p.string(type_key, "default");
  LONGCTX_RETURN_IF_ERROR(p.error);
  if (rope.type == "llama3") {
    rope.factor = p.number("factor");
    rope.low_freq_factor = p.number("low_freq_factor");
    rope.high_freq_factor = p.number("high_freq_factor");
    rope.original_max_position_embeddings = p.integer("original_max_position_embeddings");
    LONGCTX_RETURN_IF_ERROR(p.error);
    if (!(rope.factor > 0) || !(rope.low_freq_factor > 0) ||
        !(rope.high_freq_factor > rope.low_freq_factor) || rope.original_max_position_embeddings <= 0)
      return invalid_argument(source + ": llama3 rope scaling in '" + params_key +
                              "' needs factor > 0, 0 < low_freq_factor < high_freq_factor and "
                              "original_max_position_embeddings > 0");
  } else if (rope.type != "default") {
    return unimplemented(source + ": rope type '" + rope.type + "' (" + p.field(type_key) +
                         ") is not supported; supported: default, llama3");
  }
  if (!(rope.theta > 0))
    return invalid_argument(source + ": rope_theta must be positive, got " + std::to_string(rope.theta));
  return Status::ok();
}

Status positive(const std::string& source, const char* field, int64_t v) {
  if (v > 0) return Status::ok();
  return invalid_argument(source + ": field '" + field + "' must be positive, got " + std::to_string(v));
}

// MoE fields. Fields that decide which tensors exist are required; routing knobs absent
// from the file take transformers' defaults for that model.
Status parse_moe(FieldReader& r, const std::string& source, ModelConfig& c) {
  switch (c.arch) {
    case Architecture::kMixtral:
      c.num_experts = r.integer("num_local_experts");
      c.num_experts_per_tok = r.integer("num_experts_per_tok");
      c.moe_intermediate_size = c.intermediate_size;  // experts are full-size MLPs
      c.norm_topk_prob = true;                        // softmax over the selected logits
      break;
    case Architecture::kQwen3Moe:
      // transformers names it num_experts; some exported configs use mixtral's name.
      c.num_experts = r.integer(r.has("num_experts") ? "num_experts" : "num_local_experts");
      c.num_experts_per_tok = r.integer("num_experts_per_tok");
      c.moe_intermediate_size = r.integer("moe_intermediate_size");
      c.norm_topk_prob = r.boolean("norm_topk_prob", false);
      c.decoder_sparse_step = r.integer("decoder_sparse_step", 1);
      c.mlp_only_layers = r.integers("mlp_only_layers", false);
      break;
    case Architecture::kDeepseekV3:
      c.num_experts = r.integer("n_routed_experts");
      c.num_experts_per_tok = r.integer("num_experts_per_tok");
      c.moe_intermediate_size = r.integer("moe_intermediate_size");
      c.n_shared_experts = r.integer("n_shared_experts");
      c.first_k_dense_replace = r.integer("first_k_dense_replace");
      c.n_group = r.integer("n_group");
      c.topk_group = r.integer("topk_group");
      c.norm_topk_prob = r.boolean("norm_topk_prob", true);
      c.routed_scaling_factor = r.number("routed_scaling_factor", 2.5);
      c.scoring_func = r.string("scoring_func", "sigmoid");
      break;
    default: return Status::ok();
  }
  LONGCTX_RETURN_IF_ERROR(r.error);

  const char* experts_key = c.arch == Architecture::kMixtral      ? "num_local_experts"
                            : c.arch == Architecture::kDeepseekV3 ? "n_routed_experts"
                                                                  : "num_experts";
  LONGCTX_RETURN_IF_ERROR(positive(source, experts_key, c.num_experts));
  LONGCTX_RETURN_IF_ERROR(positive(source, "num_experts_per_tok", c.num_experts_per_tok));
  LONGCTX_RETURN_IF_ERROR(positive(source, "moe_intermediate_size", c.moe_intermediate_size));
  if (c.num_experts_per_tok > c.num_experts)
    return invalid_argument(
        source + ": top-k > experts: num_experts_per_tok = " + std::to_string(c.num_experts_per_tok) +
        " exceeds " + experts_key + " = " + std::to_string(c.num_experts));
  if (c.arch == Architecture::kQwen3Moe) {
    LONGCTX_RETURN_IF_ERROR(positive(source, "decoder_sparse_step", c.decoder_sparse_step));
    for (int64_t layer : c.mlp_only_layers)
      if (layer < 0 || layer >= c.num_layers)
        return invalid_argument(source + ": mlp_only_layers entry " + std::to_string(layer) +
                                " is not a layer index in [0, " + std::to_string(c.num_layers) + ")");
  }
  if (c.arch == Architecture::kDeepseekV3) {
    LONGCTX_RETURN_IF_ERROR(positive(source, "n_group", c.n_group));
    LONGCTX_RETURN_IF_ERROR(positive(source, "topk_group", c.topk_group));
    if (c.topk_group > c.n_group)
      return invalid_argument(source + ": topk_group = " + std::to_string(c.topk_group) +
                              " exceeds n_group = " + std::to_string(c.n_group));
    if (c.num_experts % c.n_group != 0)
      return invalid_argument(source + ": n_routed_experts = " + std::to_string(c.num_experts) +
                              " is not divisible by n_group = " + std::to_string(c.n_group));
    // Group-limited routing picks the top-k among topk_group groups' experts.
    if (c.num_experts_per_tok > c.topk_group * (c.num_experts / c.n_group))
      return invalid_argument(source + ": top-k > experts in the selected groups: num_experts_per_tok = " +
                              std::to_string(c.num_experts_per_tok) +
                              " exceeds topk_group × experts per group = " +
                              std::to_string(c.topk_group * (c.num_experts / c.n_group)));
    if (c.n_shared_experts < 0 || c.first_k_dense_replace < 0 || c.first_k_dense_replace > c.num_layers)
      return invalid_argument(source + ": n_shared_experts must be >= 0 and first_k_dense_replace in [0, " +
                              "num_hidden_layers]");
    if (c.scoring_func != "sigmoid" && c.scoring_func != "softmax")
      return unimplemented(source + ": scoring_func '" + c.scoring_func +
                           "' is not supported; supported: sigmoid, softmax");
  }
  return Status::ok();
}

// Multi-head latent attention (DeepSeek-V2 §2.1). q_lora_rank null (V2-Lite) means q_proj
// is a plain projection; a number means the low-rank q_a_proj / q_b_proj path.
Status parse_mla(FieldReader& r, const std::string& source, ModelConfig& c) {
  if (!r.find("kv_lora_rank"))
    return invalid_argument(source +
                            ": missing required field 'kv_lora_rank' (an integer; deepseek_v3 "
                            "uses multi-head latent attention)");
  c.kv_lora_rank = r.integer("kv_lora_rank");
  c.q_lora_rank = r.integer("q_lora_rank", 0);
  c.qk_rope_head_dim = r.integer("qk_rope_head_dim");
  c.qk_nope_head_dim = r.integer("qk_nope_head_dim");
  c.v_head_dim = r.integer("v_head_dim");
  c.rope_interleave = r.boolean("rope_interleave", true);
  LONGCTX_RETURN_IF_ERROR(r.error);
  LONGCTX_RETURN_IF_ERROR(positive(source, "kv_lora_rank", c.kv_lora_rank));
  LONGCTX_RETURN_IF_ERROR(positive(source, "qk_rope_head_dim", c.qk_rope_head_dim));
  LONGCTX_RETURN_IF_ERROR(positive(source, "qk_nope_head_dim", c.qk_nope_head_dim));
  LONGCTX_RETURN_IF_ERROR(positive(source, "v_head_dim", c.v_head_dim));
  if (c.q_lora_rank < 0)
    return invalid_argument(source + ": field 'q_lora_rank' must be null or positive, got " +
                            std::to_string(c.q_lora_rank));
  return Status::ok();
}

}  // namespace

const char* architecture_name(Architecture a) { return arch_info(a).name; }

std::vector<double> ModelConfig::rope_inv_freq() const {
  const int64_t dim = rotary_dim();
  std::vector<double> inv_freq(static_cast<size_t>(dim / 2));
  for (size_t i = 0; i < inv_freq.size(); ++i)
    inv_freq[i] = 1.0 / std::pow(rope.theta, 2.0 * static_cast<double>(i) / static_cast<double>(dim));
  if (rope.type != "llama3") return inv_freq;

  // Llama 3.1 frequency scaling (transformers' _compute_llama3_parameters): wavelengths
  // longer than original_context / low_freq_factor are slowed by `factor`, those shorter
  // than original_context / high_freq_factor are kept, and in between the two are blended
  // with smooth = (original_context / wavelen - low) / (high - low).
  const double old_context = static_cast<double>(rope.original_max_position_embeddings);
  const double low_freq_wavelen = old_context / rope.low_freq_factor;
  const double high_freq_wavelen = old_context / rope.high_freq_factor;
  for (double& f : inv_freq) {
    const double wavelen = 2.0 * std::numbers::pi / f;
    if (wavelen > low_freq_wavelen) {
      f /= rope.factor;
    } else if (wavelen >= high_freq_wavelen) {
      const double smooth =
          (old_context / wavelen - rope.low_freq_factor) / (rope.high_freq_factor - rope.low_freq_factor);
      f = (1.0 - smooth) * f / rope.factor + smooth * f;
    }
  }
  return inv_freq;
}

Result<ModelConfig> parse_model_config(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) return invalid_argument(source + ": expected a JSON object, got " + j.type_name());
  ModelConfig c;
  LONGCTX_ASSIGN_OR_RETURN(c.arch, parse_architecture(j, source));

  FieldReader r(j, source);
  c.model_type = r.string("model_type", arch_info(c.arch).model_type);
  c.vocab_size = r.integer("vocab_size");
  c.hidden_size = r.integer("hidden_size");
  c.intermediate_size = r.integer("intermediate_size");
  c.num_layers = r.integer("num_hidden_layers");
  c.num_heads = r.integer("num_attention_heads");
  c.num_kv_heads = r.integer("num_key_value_heads", c.num_heads);
  const bool explicit_head_dim = r.has("head_dim");
  c.head_dim = r.integer("head_dim", 0);
  c.max_position_embeddings = r.integer("max_position_embeddings");
  c.rms_norm_eps = r.number("rms_norm_eps");
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);
  c.hidden_act = r.string("hidden_act", "silu");
  c.torch_dtype = r.string(r.has("dtype") ? "dtype" : "torch_dtype", "float32");
  c.bos_token_id = r.integer("bos_token_id", -1);
  c.eos_token_ids = r.integers("eos_token_id", true);
  switch (c.arch) {
    case Architecture::kQwen2: c.qkv_bias = true; break;
    case Architecture::kQwen3:
    case Architecture::kQwen3Moe:
      c.qkv_bias = r.boolean("attention_bias", false);
      c.qk_norm = true;
      break;
    case Architecture::kLlama:
      c.qkv_bias = r.boolean("attention_bias", false);
      c.mlp_bias = r.boolean("mlp_bias", false);
      break;
    case Architecture::kDeepseekV3: c.qkv_bias = r.boolean("attention_bias", false); break;
    case Architecture::kMixtral: break;
  }
  LONGCTX_RETURN_IF_ERROR(r.error);

  LONGCTX_RETURN_IF_ERROR(positive(source, "vocab_size", c.vocab_size));
  LONGCTX_RETURN_IF_ERROR(positive(source, "hidden_size", c.hidden_size));
  LONGCTX_RETURN_IF_ERROR(positive(source, "intermediate_size", c.intermediate_size));
  LONGCTX_RETURN_IF_ERROR(positive(source, "num_hidden_layers", c.num_layers));
  LONGCTX_RETURN_IF_ERROR(positive(source, "num_attention_heads", c.num_heads));
  LONGCTX_RETURN_IF_ERROR(positive(source, "num_key_value_heads", c.num_kv_heads));
  LONGCTX_RETURN_IF_ERROR(positive(source, "max_position_embeddings", c.max_position_embeddings));
  if (!(c.rms_norm_eps > 0))
    return invalid_argument(source + ": field 'rms_norm_eps' must be positive, got " +
                            std::to_string(c.rms_norm_eps));
  if (explicit_head_dim) {
    LONGCTX_RETURN_IF_ERROR(positive(source, "head_dim", c.head_dim));
  } else {
    if (c.hidden_size % c.num_heads != 0)
      return invalid_argument(source + ": hidden_size = " + std::to_string(c.hidden_size) +
                              " is not divisible by num_attention_heads = " + std::to_string(c.num_heads) +
                              " and no head_dim is given");
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.num_heads % c.num_kv_heads != 0)
    return invalid_argument(source + ": num_attention_heads = " + std::to_string(c.num_heads) +
                            " is not a multiple of num_key_value_heads = " + std::to_string(c.num_kv_heads));
  if (c.hidden_act != "silu")
    return unimplemented(source + ": hidden_act '" + c.hidden_act + "' is not supported; supported: silu");
  // Sliding-window attention changes the attention pattern; refuse rather than run
  // full attention silently. (qwen2/qwen3 carry a window size but gate it by a flag.)
  if (c.arch == Architecture::kMixtral && r.has("sliding_window"))
    return unimplemented(source + ": sliding_window = " + j["sliding_window"].dump() +
                         " is not supported; only full attention (sliding_window null)");
  if (r.boolean("use_sliding_window", false))
    return unimplemented(source + ": use_sliding_window = true is not supported; only full attention");

  LONGCTX_RETURN_IF_ERROR(parse_rope(j, source, c.arch, c.rope));
  LONGCTX_RETURN_IF_ERROR(parse_moe(r, source, c));
  if (c.is_mla()) LONGCTX_RETURN_IF_ERROR(parse_mla(r, source, c));
  if (c.rotary_dim() % 2 != 0)
    return invalid_argument(source + ": rotary dimension " + std::to_string(c.rotary_dim()) +
                            (c.is_mla() ? " (qk_rope_head_dim)" : " (head_dim)") + " must be even");
  return c;
}

Result<ModelConfig> load_model_config(const std::filesystem::path& dir_or_file) {
  std::error_code ec;
  const std::filesystem::path path =
      std::filesystem::is_directory(dir_or_file, ec) ? dir_or_file / "config.json" : dir_or_file;
  std::ifstream in(path);
  if (!in) return not_found("cannot open model config " + path.string());
  std::stringstream buf;
  buf << in.rdbuf();
  json j = json::parse(buf.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return invalid_argument(path.string() + ": not valid JSON");
  return parse_model_config(j, path.string());
}

}  // namespace longctx
