// make-model presets: the written checkpoint loads through the same path as a real
// Hugging Face one and runs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/dense_model.h"
#include "model/dense_weights.h"
#include "model/generation.h"
#include "model/presets.h"
#include "model/safetensors.h"

namespace longctx {
namespace {

namespace fs = std::filesystem;

class PresetTest : public ::testing::TestWithParam<std::pair<std::string, std::string>> {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() / ("longctx_preset_" + GetParam().first + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_P(PresetTest, WritesALoadableCheckpointThatGenerates) {
  auto preset = find_model_preset(GetParam().first, "tiny");
  ASSERT_TRUE(preset.is_ok()) << preset.status().to_string();
  MakeModelOptions opts;
  opts.out_dir = dir_;
  opts.tokenizers_dir = LONGCTX_TOKENIZERS_DIR;
  Status st = make_model(*preset, opts);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"})
    EXPECT_TRUE(fs::exists(dir_ / f)) << f;

  auto cfg = load_model_config(dir_);
  ASSERT_TRUE(cfg.is_ok()) << cfg.status().to_string();
  EXPECT_EQ(cfg->model_type, GetParam().second);
  auto ckpt = Checkpoint::open(dir_);
  ASSERT_TRUE(ckpt.is_ok()) << ckpt.status().to_string();
  EXPECT_EQ(ckpt->get("model.embed_tokens.weight")->dtype(), DType::kBF16);

  auto model = DenseModel::load(dir_);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  GenerationOptions g;
  g.max_new_tokens = 4;
  const std::vector<int32_t> prompt{100, 200, 300};
  auto a = generate(*model, prompt, g);
  auto b = generate(*model, prompt, g);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(a->token_ids.size(), 4u);
  EXPECT_EQ(a->token_ids, b->token_ids);  // deterministic
}

INSTANTIATE_TEST_SUITE_P(Tiny, PresetTest,
                         ::testing::Values(std::make_pair("qwen3", "qwen3"), std::make_pair("qwen2", "qwen2"),
                                           std::make_pair("llama", "llama"),
                                           std::make_pair("mixtral", "mixtral"),
                                           std::make_pair("qwen3_moe", "qwen3_moe"),
                                           std::make_pair("deepseek_v3", "deepseek_v3")));

// The tiny MoE presets really are MoE: routed layers, with the loader's expert weights.
TEST(Presets, TinyMoePresetsHaveRoutedLayers) {
  for (const char* arch : {"mixtral", "qwen3_moe", "deepseek_v3"}) {
    auto p = find_model_preset(arch, "tiny");
    ASSERT_TRUE(p.is_ok()) << arch;
    auto cfg = parse_model_config(p->config, arch);
    ASSERT_TRUE(cfg.is_ok()) << cfg.status().to_string();
    EXPECT_TRUE(cfg->is_moe()) << arch;
    EXPECT_GT(cfg->num_experts, cfg->num_experts_per_tok) << arch;
    EXPECT_TRUE(is_moe_layer(*cfg, cfg->num_layers - 1)) << arch;
  }
  auto ds = parse_model_config(find_model_preset("deepseek_v3", "tiny")->config, "deepseek_v3/tiny");
  ASSERT_TRUE(ds.is_ok());
  EXPECT_TRUE(ds->is_mla());
  EXPECT_FALSE(is_moe_layer(*ds, 0));  // first_k_dense_replace = 1
  EXPECT_GT(ds->n_group, ds->topk_group);
  EXPECT_EQ(ds->n_shared_experts, 1);
}

TEST(Presets, UnknownPresetNamesTheChoices) {
  auto p = find_model_preset("qwen3", "huge");
  ASSERT_FALSE(p.is_ok());
  EXPECT_NE(p.status().message().find("qwen3/tiny"), std::string::npos) << p.status().message();
}

TEST(Presets, EightBillionShapesAreTheRealOnes) {
  auto q = find_model_preset("qwen3", "8b");
  ASSERT_TRUE(q.is_ok());
  EXPECT_EQ(q->config["hidden_size"], 4096);
  EXPECT_EQ(q->config["num_hidden_layers"], 36);
  EXPECT_EQ(q->config["intermediate_size"], 12288);
  auto l = find_model_preset("llama", "8b");
  ASSERT_TRUE(l.is_ok());
  EXPECT_EQ(l->config["num_hidden_layers"], 32);
  EXPECT_EQ(l->config["intermediate_size"], 14336);
  EXPECT_EQ(l->config["rope_scaling"]["rope_type"], "llama3");
  // Parses as a 4.x-style Hub config and has ~8B parameters.
  auto cfg = parse_model_config(l->config, "llama/8b");
  ASSERT_TRUE(cfg.is_ok()) << cfg.status().to_string();
  const double per_layer = 4096.0 * (4096 + 2 * 1024 + 4096) + 3.0 * 4096 * 14336;
  const double params = 32 * per_layer + 2.0 * 128256 * 4096;
  EXPECT_NEAR(params / 1e9, 8.03, 0.05);
}

// Parameters of a parsed config, counted from the tensors the loader reads: attention,
// MLPs or experts, routers, embeddings (norms left out: < 0.01%).
struct ParamCount {
  double total = 0, active = 0;
};
ParamCount count_params(const ModelConfig& c) {
  const double h = static_cast<double>(c.hidden_size), hq = static_cast<double>(c.num_heads);
  double attn = 0;
  if (c.is_mla()) {
    const double qk = static_cast<double>(c.qk_nope_head_dim + c.qk_rope_head_dim);
    const double ql = static_cast<double>(c.q_lora_rank), kl = static_cast<double>(c.kv_lora_rank);
    attn = h * ql + ql * hq * qk + h * (kl + static_cast<double>(c.qk_rope_head_dim)) +
           kl * hq * static_cast<double>(c.qk_nope_head_dim + c.v_head_dim) +
           hq * static_cast<double>(c.v_head_dim) * h;
  } else {
    const double d = static_cast<double>(c.head_dim), hkv = static_cast<double>(c.num_kv_heads);
    attn = 2 * h * hq * d + 2 * h * hkv * d;
  }
  const double expert = 3 * h * static_cast<double>(c.moe_intermediate_size);
  ParamCount n;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    double layer_total = attn, layer_active = attn;
    if (is_moe_layer(c, l)) {
      const double shared =
          static_cast<double>(c.n_shared_experts) * expert + h * static_cast<double>(c.num_experts);
      layer_total += static_cast<double>(c.num_experts) * expert + shared;
      layer_active += static_cast<double>(c.num_experts_per_tok) * expert + shared;
    } else {
      layer_total += 3 * h * static_cast<double>(c.intermediate_size);
      layer_active += 3 * h * static_cast<double>(c.intermediate_size);
    }
    n.total += layer_total;
    n.active += layer_active;
  }
  const double embed = (c.tie_word_embeddings ? 1 : 2) * h * static_cast<double>(c.vocab_size);
  n.total += embed;
  n.active += embed;
  return n;
}

// The published sizes: Mixtral-8x7B 46.7B (12.9B active), Qwen3-30B-A3B 30.5B (3.3B active),
// DeepSeek-V3 671B (37B active; the model card counts the MTP module apart).
TEST(Presets, RealMoeShapesAreThePublishedOnes) {
  auto mx = find_model_preset("mixtral", "8x7b");
  ASSERT_TRUE(mx.is_ok());
  EXPECT_EQ(mx->config["hidden_size"], 4096);
  EXPECT_EQ(mx->config["intermediate_size"], 14336);
  EXPECT_EQ(mx->config["num_local_experts"], 8);
  EXPECT_EQ(mx->config["num_experts_per_tok"], 2);
  EXPECT_EQ(mx->config["num_key_value_heads"], 8);
  EXPECT_EQ(mx->config["vocab_size"], 32000);
  EXPECT_TRUE(mx->tokenizer_name.empty());  // Mistral's tokenizer is not fetched
  auto q = find_model_preset("qwen3_moe", "30b-a3b");
  ASSERT_TRUE(q.is_ok());
  EXPECT_EQ(q->config["hidden_size"], 2048);
  EXPECT_EQ(q->config["num_hidden_layers"], 48);
  EXPECT_EQ(q->config["num_experts"], 128);
  EXPECT_EQ(q->config["num_experts_per_tok"], 8);
  EXPECT_EQ(q->config["moe_intermediate_size"], 768);
  EXPECT_EQ(q->config["num_key_value_heads"], 4);
  EXPECT_EQ(q->config["head_dim"], 128);
  auto ds = find_model_preset("deepseek_v3", "671b");
  ASSERT_TRUE(ds.is_ok());
  EXPECT_EQ(ds->config["hidden_size"], 7168);
  EXPECT_EQ(ds->config["num_hidden_layers"], 61);
  EXPECT_EQ(ds->config["n_routed_experts"], 256);
  EXPECT_EQ(ds->config["n_shared_experts"], 1);
  EXPECT_EQ(ds->config["num_experts_per_tok"], 8);
  EXPECT_EQ(ds->config["n_group"], 8);
  EXPECT_EQ(ds->config["topk_group"], 4);
  EXPECT_EQ(ds->config["first_k_dense_replace"], 3);
  EXPECT_EQ(ds->config["kv_lora_rank"], 512);
  EXPECT_EQ(ds->config["q_lora_rank"], 1536);
  EXPECT_EQ(ds->config["qk_rope_head_dim"], 64);
  EXPECT_EQ(ds->config["qk_nope_head_dim"], 128);
  EXPECT_EQ(ds->config["v_head_dim"], 128);
  EXPECT_EQ(ds->config["moe_intermediate_size"], 2048);
  EXPECT_EQ(ds->config["routed_scaling_factor"], 2.5);
  EXPECT_EQ(ds->config["scoring_func"], "sigmoid");

  struct Expect {
    const ModelPreset* p;
    double total_b, active_b;
  };
  for (const Expect& e : {Expect{&*mx, 46.70, 12.88}, Expect{&*q, 30.53, 3.35}, Expect{&*ds, 670.9, 37.5}}) {
    auto cfg = parse_model_config(e.p->config, e.p->arch + "/" + e.p->preset);
    ASSERT_TRUE(cfg.is_ok()) << cfg.status().to_string();
    const ParamCount n = count_params(*cfg);
    EXPECT_NEAR(n.total / 1e9, e.total_b, 0.005 * e.total_b) << e.p->arch;
    EXPECT_NEAR(n.active / 1e9, e.active_b, 0.02 * e.active_b) << e.p->arch;
  }
}

TEST(Presets, MissingTokenizerIsAClearError) {
  auto preset = find_model_preset("qwen3", "tiny");
  MakeModelOptions opts;
  opts.out_dir = fs::temp_directory_path() / "longctx_preset_missing_tok";
  opts.tokenizers_dir = fs::temp_directory_path() / "no_such_tokenizers_dir";
  Status st = make_model(*preset, opts);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("tokenizer.json"), std::string::npos) << st.message();
  fs::remove_all(opts.out_dir);
}

}  // namespace
}  // namespace longctx
