// make-model presets: the written checkpoint loads through the same path as a real
// Hugging Face one and runs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/dense_model.h"
#include "model/generation.h"
#include "model/presets.h"
#include "model/safetensors.h"

namespace longctx {
namespace {

namespace fs = std::filesystem;

class PresetTest : public ::testing::TestWithParam<std::pair<std::string, std::string>> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("longctx_preset_" + GetParam().first + "_" + std::to_string(::getpid()));
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
                                           std::make_pair("llama", "llama")));

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
