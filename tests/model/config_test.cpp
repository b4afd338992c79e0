#include "model/config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <numbers>
#include <string>

namespace longctx {
namespace {

using nlohmann::json;

const std::string kHf = std::string(LONGCTX_TEST_DATA_DIR) + "/hf/";

ModelConfig load_fixture(const std::string& name) {
  auto r = load_model_config(kHf + name);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.value();
}

// A minimal transformers-4.x Llama 3.1 config (rope_theta + rope_scaling at top level).
json llama31_config() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
    "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "torch_dtype": "bfloat16", "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
    "tie_word_embeddings": false})");
}

json deepseek_config() {
  return json::parse(R"({
    "architectures": ["DeepseekV3ForCausalLM"], "vocab_size": 512, "hidden_size": 64,
    "intermediate_size": 160, "num_hidden_layers": 3, "num_attention_heads": 4,
    "max_position_embeddings": 4096, "rms_norm_eps": 1e-6, "n_routed_experts": 8,
    "num_experts_per_tok": 2, "moe_intermediate_size": 32, "n_shared_experts": 1,
    "first_k_dense_replace": 1, "n_group": 2, "topk_group": 1, "q_lora_rank": null,
    "kv_lora_rank": 16, "qk_rope_head_dim": 8, "qk_nope_head_dim": 16, "v_head_dim": 16})");
}

Status parse_status(const json& j) { return parse_model_config(j, "test/config.json").status(); }

void expect_error(const json& j, StatusCode code, std::initializer_list<std::string> fragments) {
  Status st = parse_status(j);
  ASSERT_EQ(st.code(), code) << st.to_string();
  EXPECT_NE(st.message().find("test/config.json"), std::string::npos) << st.message();
  for (const auto& f : fragments) EXPECT_NE(st.message().find(f), std::string::npos) << st.message();
}

TEST(ConfigTest, AllFixturesParse) {
  for (const char* name :
       {"llama_gqa", "qwen2_bias_tied", "qwen3_qknorm", "mixtral_moe", "qwen3_moe", "deepseek_v3_mla"}) {
    auto r = load_model_config(kHf + name + "/config.json");
    EXPECT_TRUE(r.is_ok()) << name << ": " << r.status().to_string();
  }
}

TEST(ConfigTest, LlamaGqa) {
  ModelConfig c = load_fixture("llama_gqa");
  EXPECT_EQ(c.arch, Architecture::kLlama);
  EXPECT_STREQ(architecture_name(c.arch), "LlamaForCausalLM");
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 160);
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.num_heads, 4);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.rope.type, "default");
  EXPECT_DOUBLE_EQ(c.rope.theta, 500000.0);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.is_moe());
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_EQ(c.torch_dtype, "float32");
}

TEST(ConfigTest, Qwen2TiedWithBias) {
  ModelConfig c = load_fixture("qwen2_bias_tied");
  EXPECT_EQ(c.arch, Architecture::kQwen2);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.head_dim, 16);  // no head_dim in the file: 64 / 4
  EXPECT_DOUBLE_EQ(c.rope.theta, 1e6);
}

TEST(ConfigTest, Qwen3ExplicitHeadDim) {
  ModelConfig c = load_fixture("qwen3_qknorm");
  EXPECT_EQ(c.arch, Architecture::kQwen3);
  EXPECT_EQ(c.head_dim, 32);  // explicit, != 64 / 4
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.rope_inv_freq().size(), 16u);
}

TEST(ConfigTest, MixtralExperts) {
  ModelConfig c = load_fixture("mixtral_moe");
  EXPECT_EQ(c.arch, Architecture::kMixtral);
  EXPECT_EQ(c.head_dim, 16);  // head_dim: null
  EXPECT_TRUE(c.is_moe());
  EXPECT_EQ(c.num_experts, 4);
  EXPECT_EQ(c.num_experts_per_tok, 2);
  EXPECT_EQ(c.moe_intermediate_size, 160);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_DOUBLE_EQ(c.rope.theta, 1e6);
}

TEST(ConfigTest, Qwen3Moe) {
  ModelConfig c = load_fixture("qwen3_moe");
  EXPECT_EQ(c.arch, Architecture::kQwen3Moe);
  EXPECT_EQ(c.num_experts, 8);  // num_local_experts in this file
  EXPECT_EQ(c.num_experts_per_tok, 2);
  EXPECT_EQ(c.moe_intermediate_size, 48);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_EQ(c.decoder_sparse_step, 1);
  EXPECT_TRUE(c.mlp_only_layers.empty());
  EXPECT_TRUE(c.qk_norm);
}

TEST(ConfigTest, DeepseekV3Mla) {
  ModelConfig c = load_fixture("deepseek_v3_mla");
  EXPECT_EQ(c.arch, Architecture::kDeepseekV3);
  EXPECT_TRUE(c.is_mla());
  EXPECT_TRUE(c.is_moe());
  EXPECT_EQ(c.num_experts, 8);
  EXPECT_EQ(c.num_experts_per_tok, 2);
  EXPECT_EQ(c.moe_intermediate_size, 32);
  EXPECT_EQ(c.n_shared_experts, 1);
  EXPECT_EQ(c.n_group, 2);
  EXPECT_EQ(c.topk_group, 1);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 2.5);
  EXPECT_EQ(c.scoring_func, "sigmoid");  // not in the file: deepseek_v3's default
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_EQ(c.first_k_dense_replace, 1);
  EXPECT_EQ(c.q_lora_rank, 32);
  EXPECT_EQ(c.kv_lora_rank, 16);
  EXPECT_EQ(c.qk_rope_head_dim, 8);
  EXPECT_EQ(c.qk_nope_head_dim, 16);
  EXPECT_EQ(c.v_head_dim, 16);
  EXPECT_TRUE(c.rope_interleave);
  EXPECT_EQ(c.rotary_dim(), 8);
  EXPECT_EQ(c.rope_inv_freq().size(), 4u);
}

TEST(ConfigTest, DeepseekNullQLoraRank) {
  auto r = parse_model_config(deepseek_config(), "test/config.json");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->q_lora_rank, 0);
}

TEST(ConfigTest, DefaultRopeInvFreq) {
  ModelConfig c = load_fixture("llama_gqa");  // theta 5e5, head_dim 16
  auto f = c.rope_inv_freq();
  ASSERT_EQ(f.size(), 8u);
  EXPECT_DOUBLE_EQ(f[0], 1.0);
  EXPECT_NEAR(f[3], std::pow(500000.0, -6.0 / 16.0), 1e-15);
}

// Llama 3.1 rope scaling, 4.x form. Expected values are worked out by hand from the
// formula (Meta's apply_scaling): with factor 8, low 1, high 4, context 8192, wavelengths
// below 2048 keep their frequency, above 8192 are divided by 8, and in between blend.
TEST(ConfigTest, Llama31RopeScaling) {
  auto r = parse_model_config(llama31_config(), "test/config.json");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const ModelConfig& c = *r;
  EXPECT_EQ(c.rope.type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope.theta, 500000.0);
  EXPECT_DOUBLE_EQ(c.rope.factor, 8.0);
  EXPECT_EQ(c.rope.original_max_position_embeddings, 8192);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(c.torch_dtype, "bfloat16");

  const auto f = c.rope_inv_freq();
  ASSERT_EQ(f.size(), 64u);
  auto base = [](int i) { return std::pow(500000.0, -2.0 * i / 128.0); };
  auto wavelen = [&](int i) { return 2 * std::numbers::pi / base(i); };
  // High frequency: i = 0 (wavelen 2π) and i = 20 (≈ 1.5e3 < 2048) are unchanged.
  ASSERT_LT(wavelen(20), 2048.0);
  EXPECT_DOUBLE_EQ(f[0], 1.0);
  EXPECT_DOUBLE_EQ(f[20], base(20));
  // Low frequency: i = 63 (wavelen ≈ 5.4e6 > 8192) is divided by the factor.
  ASSERT_GT(wavelen(63), 8192.0);
  EXPECT_DOUBLE_EQ(f[63], base(63) / 8.0);
  // Middle: find the indices whose wavelength lies in [2048, 8192] and check the blend.
  int checked = 0;
  for (int i = 0; i < 64; ++i) {
    const double w = wavelen(i);
    if (w < 2048.0 || w > 8192.0) continue;
    const double smooth = (8192.0 / w - 1.0) / (4.0 - 1.0);
    const double want = (1 - smooth) * base(i) / 8.0 + smooth * base(i);
    EXPECT_NEAR(f[i], want, 1e-15) << i;
    EXPECT_LT(f[i], base(i));
    EXPECT_GT(f[i], base(i) / 8.0);
    ++checked;
  }
  EXPECT_GE(checked, 2);  // indices 23..27 for these numbers
}

TEST(ConfigTest, RopeScalingNullAndLegacyType) {
  json j = llama31_config();
  j["rope_scaling"] = nullptr;
  auto r = parse_model_config(j, "test/config.json");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->rope.type, "default");

  j = llama31_config();
  j["rope_scaling"].erase("rope_type");
  j["rope_scaling"]["type"] = "llama3";  // older spelling
  r = parse_model_config(j, "test/config.json");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->rope.type, "llama3");
}

TEST(ConfigTest, RopeParametersLlama3) {  // transformers 5.x form
  json j = llama31_config();
  j["rope_parameters"] = j["rope_scaling"];
  j["rope_parameters"]["rope_theta"] = 500000.0;
  j.erase("rope_scaling");
  j.erase("rope_theta");
  auto r = parse_model_config(j, "test/config.json");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->rope.type, "llama3");
  EXPECT_DOUBLE_EQ(r->rope.theta, 500000.0);
  EXPECT_DOUBLE_EQ(r->rope.high_freq_factor, 4.0);
}

TEST(ConfigErrorTest, UnknownArchitecture) {
  json j = llama31_config();
  j["architectures"] = {"GPT2LMHeadModel"};
  expect_error(j, StatusCode::kUnimplemented,
               {"GPT2LMHeadModel", "LlamaForCausalLM", "DeepseekV3ForCausalLM"});
}

TEST(ConfigErrorTest, MissingField) {
  json j = llama31_config();
  j.erase("hidden_size");
  expect_error(j, StatusCode::kInvalidArgument, {"hidden_size", "missing"});
  j = llama31_config();
  j.erase("architectures");
  expect_error(j, StatusCode::kInvalidArgument, {"architectures"});
}

TEST(ConfigErrorTest, WrongType) {
  json j = llama31_config();
  j["num_attention_heads"] = "32";
  expect_error(j, StatusCode::kInvalidArgument, {"num_attention_heads", "integer"});
  j = llama31_config();
  j["tie_word_embeddings"] = 1;
  expect_error(j, StatusCode::kInvalidArgument, {"tie_word_embeddings", "boolean"});
  j = llama31_config();
  j["rope_scaling"]["factor"] = "8";
  expect_error(j, StatusCode::kInvalidArgument, {"rope_scaling.factor"});
}

TEST(ConfigErrorTest, BadRopeType) {
  json j = llama31_config();
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  expect_error(j, StatusCode::kUnimplemented, {"yarn", "llama3"});
  j = llama31_config();
  j["rope_scaling"]["high_freq_factor"] = 1.0;  // == low_freq_factor: the blend divides by zero
  expect_error(j, StatusCode::kInvalidArgument, {"high_freq_factor"});
}

TEST(ConfigErrorTest, TopKExceedsExperts) {
  auto j = json::parse(R"({"architectures": ["MixtralForCausalLM"], "vocab_size": 32, "hidden_size": 64,
    "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4,
    "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "num_local_experts": 4,
    "num_experts_per_tok": 5})");
  expect_error(j, StatusCode::kInvalidArgument, {"top-k > experts", "num_local_experts"});
  j["num_experts_per_tok"] = 2;
  EXPECT_TRUE(parse_status(j).is_ok());
}

TEST(ConfigErrorTest, TopkGroupExceedsNGroup) {
  json j = deepseek_config();
  j["topk_group"] = 3;
  expect_error(j, StatusCode::kInvalidArgument, {"topk_group", "n_group"});
}

TEST(ConfigErrorTest, KvLoraRankMissing) {
  json j = deepseek_config();
  j.erase("kv_lora_rank");
  expect_error(j, StatusCode::kInvalidArgument, {"kv_lora_rank"});
  j["kv_lora_rank"] = 0;  // present but not a latent width
  expect_error(j, StatusCode::kInvalidArgument, {"kv_lora_rank"});
}

// Group-limited routing needs whole groups, and enough experts in the chosen groups.
TEST(ConfigErrorTest, ExpertsNotDivisibleIntoGroups) {
  json j = deepseek_config();
  j["n_group"] = 3;  // 8 experts
  j["topk_group"] = 2;
  expect_error(j, StatusCode::kInvalidArgument, {"n_routed_experts", "n_group = 3"});
}

TEST(ConfigErrorTest, TopKExceedsTheExpertsOfTheChosenGroups) {
  json j = deepseek_config();  // 8 experts in 2 groups of 4, topk_group 1
  j["num_experts_per_tok"] = 5;
  expect_error(j, StatusCode::kInvalidArgument, {"top-k > experts in the selected groups", "topk_group"});
  j["topk_group"] = 2;
  EXPECT_TRUE(parse_status(j).is_ok());
}

TEST(ConfigErrorTest, Qwen3MoeNeedsItsExpertWidth) {
  json j = json::parse(R"({"architectures": ["Qwen3MoeForCausalLM"], "vocab_size": 32, "hidden_size": 64,
    "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4, "head_dim": 16,
    "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "num_experts": 8, "num_experts_per_tok": 2,
    "moe_intermediate_size": 48})");
  ASSERT_TRUE(parse_status(j).is_ok()) << parse_status(j).to_string();
  j.erase("moe_intermediate_size");
  expect_error(j, StatusCode::kInvalidArgument, {"moe_intermediate_size"});
  j["moe_intermediate_size"] = 0;
  expect_error(j, StatusCode::kInvalidArgument, {"moe_intermediate_size"});
}

TEST(ConfigErrorTest, HeadCounts) {
  json j = llama31_config();
  j["num_key_value_heads"] = 5;
  expect_error(j, StatusCode::kInvalidArgument, {"num_key_value_heads"});
  j = llama31_config();
  j["num_attention_heads"] = 30;  // 4096 % 30 != 0, no head_dim
  j["num_key_value_heads"] = 10;
  expect_error(j, StatusCode::kInvalidArgument, {"hidden_size", "num_attention_heads"});
  j["head_dim"] = 128;  // explicit head_dim lifts the divisibility requirement
  EXPECT_TRUE(parse_status(j).is_ok());
  j = llama31_config();
  j["vocab_size"] = 0;
  expect_error(j, StatusCode::kInvalidArgument, {"vocab_size", "positive"});
}

TEST(ConfigErrorTest, MissingFileIsNotFound) {
  auto r = load_model_config(kHf + "does_not_exist");
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace longctx
