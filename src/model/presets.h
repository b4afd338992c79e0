// Model presets for `longctx make-model`: random-weight Hugging Face checkpoints with
// real architectures' shapes, paired with a real tokenizer. `tiny` runs fast on two
// CPU cores (dense and MoE: mixtral, qwen3_moe, deepseek_v3); `0.6b` is the Qwen3-0.6B
// shape (CPU benchmarks); `8b` is Llama-3.1-8B / Qwen3-8B, and mixtral/8x7b,
// qwen3_moe/30b-a3b and deepseek_v3/671b are Mixtral-8x7B, Qwen3-30B-A3B and DeepSeek-V3
// (config.json values as published) — for `longctx plan` and GPU benchmarks; written
// only on request (16 GB to 1.3 TB in bf16), never in CI.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace longctx {

struct ModelPreset {
  std::string arch;            // "qwen3", "qwen2", "llama", "mixtral", "qwen3_moe", "deepseek_v3"
  std::string preset;          // "tiny", "0.6b", "8b", "8x7b", "30b-a3b", "671b"
  nlohmann::json config;       // config.json content (transformers 4.x form, as on the Hub)
  std::string tokenizer_name;  // folder under the tokenizers directory; empty: none is written
};

Result<ModelPreset> find_model_preset(const std::string& arch, const std::string& preset);
std::vector<std::string> model_preset_names();  // "qwen3/tiny", ...

struct MakeModelOptions {
  std::filesystem::path out_dir;
  std::filesystem::path tokenizers_dir;  // holds NAME/tokenizer.json, NAME/tokenizer_config.json
  std::string dtype = "bfloat16";        // weights on disk: bfloat16 | float16 | float32
  uint64_t seed = 0;
  float init_std = 0.02f;
};

// Writes config.json, generation_config.json, model.safetensors (streamed tensor by
// tensor: the 8B presets never sit in memory) and the tokenizer files into out_dir.
Status make_model(const ModelPreset& preset, const MakeModelOptions& opts);

}  // namespace longctx
