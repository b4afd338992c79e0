// `longctx plan`'s arithmetic on real configs (tests/data/plan/*/config.json, copied from
// the Hub). DeepSeek-R1 and Kimi-K2 ship yarn rope scaling, which our config parser
// rejects; their files here carry rope_scaling null (type default) instead — rope does
// not change any number the planner computes.
#include "perf/planner.h"

#include <gtest/gtest.h>

#include <string>

#include "model/config.h"
#include "model/presets.h"
#include "parallel/parallel_layout.h"

namespace longctx {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

ModelConfig config(const std::string& name) {
  auto c = load_model_config(std::string(LONGCTX_TEST_DATA_DIR) + "/plan/" + name);
  EXPECT_TRUE(c.is_ok()) << c.status().message();
  return c.value();
}

PlanRequest request(int64_t gpus, double gib, int64_t context, int64_t max_tp = 8, double weight_bytes = 2) {
  PlanRequest r;
  r.weight_bytes = weight_bytes;
  r.gpus = gpus;
  r.gpu_memory_bytes = gib * kGiB;
  r.context_tokens = context;
  r.max_tp = max_tp;
  return r;
}

const PlannedLayout* find(const Plan& p, int64_t tp, int64_t dcp) {
  for (const PlannedLayout& l : p.candidates)
    if (l.tp == tp && l.dcp == dcp) return &l;
  return nullptr;
}

// Every candidate is a layout ParallelLayout accepts, with the same duplication.
void expect_layouts_agree(const Plan& p, int64_t num_layers) {
  for (const PlannedLayout& l : p.candidates) {
    ParallelConfig cfg;
    cfg.tp = static_cast<int>(l.tp);
    cfg.dcp = static_cast<int>(l.dcp);
    auto layout = ParallelLayout::create(cfg, {p.num_heads, p.num_kv_heads, num_layers});
    ASSERT_TRUE(layout.is_ok()) << l.flags() << ": " << layout.status().message();
    EXPECT_EQ(layout->kv_duplication(), l.kv_duplication) << l.flags();
  }
}

TEST(Planner, DeepSeekR1Tp8DuplicatesTheLatentEightTimesAndDcp8RemovesIt) {
  auto p = plan_layout(config("deepseek-r1"), request(8, 141, 131072));
  ASSERT_TRUE(p.is_ok());
  EXPECT_EQ(p->kv_bytes_per_token, 61.0 * (512 + 64) * 2);  // MLA: one latent per token and layer
  EXPECT_EQ(p->num_kv_heads, 1);
  ASSERT_NE(find(*p, 8, 1), nullptr);
  EXPECT_EQ(find(*p, 8, 1)->kv_duplication, 8);
  ASSERT_NE(find(*p, 8, 8), nullptr);
  EXPECT_EQ(find(*p, 8, 8)->kv_duplication, 1);
  EXPECT_EQ(find(*p, 8, 8)->max_context_tokens, 8 * find(*p, 8, 1)->max_context_tokens);
  expect_layouts_agree(*p, 61);
  // 671B parameters do not fit 8 x 141 GiB in bf16 ...
  EXPECT_FALSE(p->fits);
  EXPECT_NE(p->error.find("weights do not fit"), std::string::npos) << p->error;
  // ... in fp8 they do, at tp 8, and dcp 8 follows.
  auto fp8 = plan_layout(config("deepseek-r1"), request(8, 141, 131072, 8, 1));
  ASSERT_TRUE(fp8.is_ok());
  ASSERT_TRUE(fp8->fits) << fp8->error;
  EXPECT_EQ(fp8->recommended.flags(), "--tp 8 --dcp 8");
  EXPECT_EQ(fp8->recommended.kv_duplication, 1);
}

TEST(Planner, KimiK2Tp16DuplicatesSixteenTimesAndDcp8LeavesTwo) {
  auto p = plan_layout(config("kimi-k2"), request(16, 141, 131072, 16));
  ASSERT_TRUE(p.is_ok());
  ASSERT_NE(find(*p, 16, 1), nullptr);
  EXPECT_EQ(find(*p, 16, 1)->kv_duplication, 16);
  ASSERT_NE(find(*p, 16, 8), nullptr);
  EXPECT_EQ(find(*p, 16, 8)->kv_duplication, 2);
  ASSERT_NE(find(*p, 16, 16), nullptr);
  EXPECT_EQ(find(*p, 16, 16)->kv_duplication, 1);
  expect_layouts_agree(*p, 61);
}

TEST(Planner, Llama8BHasEightKvHeadsSoTp8DoesNotDuplicate) {
  auto p = plan_layout(config("llama-3.1-8b"), request(8, 80, 131072));
  ASSERT_TRUE(p.is_ok());
  EXPECT_EQ(p->kv_bytes_per_token, 2.0 * 32 * 8 * 128 * 2);
  ASSERT_NE(find(*p, 8, 1), nullptr);
  EXPECT_EQ(find(*p, 8, 1)->kv_duplication, 1);
  EXPECT_EQ(find(*p, 8, 2), nullptr);  // dcp needs replicated KV to shard
  expect_layouts_agree(*p, 32);
  ASSERT_TRUE(p->fits);
  EXPECT_EQ(p->recommended.flags(), "--tp 1");  // 16 GB of weights fit one GPU
}

TEST(Planner, Llama70BOnEightH100sFitsA128KContext) {
  auto p = plan_layout(config("llama-3.1-70b"), request(8, 80, 131072));
  ASSERT_TRUE(p.is_ok());
  ASSERT_NE(find(*p, 8, 1), nullptr);
  EXPECT_NEAR(find(*p, 8, 1)->weights_bytes_per_rank, 70.6e9 * 2 / 8, 0.01 * 70.6e9 * 2 / 8);
  ASSERT_TRUE(p->fits) << p->error;
  const PlannedLayout& r = p->recommended;
  EXPECT_LE(r.world_size(), 8);
  EXPECT_GE(r.max_batch, 1);
  EXPECT_GE(r.max_context_tokens, 131072);
  EXPECT_LT(r.weights_bytes_per_rank + 131072 * r.kv_bytes_per_token_per_rank, 0.9 * 80 * kGiB);
  EXPECT_FALSE(p->reasoning.empty());
}

TEST(Planner, LongContextsBeyondOneTpGroupGetKvpGroups) {
  // 70B at 4M tokens: 1.2 TiB of KV; tp 8 leaves ~54 GiB per rank, so several TP groups.
  auto p = plan_layout(config("llama-3.1-70b"), request(32, 80, 4 << 20));
  ASSERT_TRUE(p.is_ok());
  ASSERT_TRUE(p->fits) << p->error;
  EXPECT_EQ(p->recommended.tp, 8);
  EXPECT_GT(p->recommended.kvp, 1);
  EXPECT_GE(p->recommended.kvp_shard_tokens * p->recommended.kvp, 4 << 20);
  EXPECT_EQ(p->recommended.kvp_shard_tokens % 16, 0);
}

TEST(Planner, ImpossibleRequestsSayWhatDoesNotFit) {
  auto p = plan_layout(config("llama-3.1-70b"), request(1, 24, 131072));
  ASSERT_TRUE(p.is_ok());
  EXPECT_FALSE(p->fits);
  EXPECT_NE(p->error.find("weights do not fit"), std::string::npos) << p->error;

  // Weights fit, the KV of 10M tokens on 8 GPUs does not.
  auto kv = plan_layout(config("llama-3.1-70b"), request(8, 80, 10'000'000));
  ASSERT_TRUE(kv.is_ok());
  EXPECT_FALSE(kv->fits);
  EXPECT_NE(kv->error.find("KV does not fit"), std::string::npos) << kv->error;

  EXPECT_FALSE(plan_layout(config("llama-3.1-8b"), request(0, 80, 1024)).is_ok());
  EXPECT_FALSE(plan_layout(config("llama-3.1-8b"), request(1, 80, 0)).is_ok());
}

ModelConfig preset(const std::string& arch, const std::string& name) {
  auto p = find_model_preset(arch, name);
  EXPECT_TRUE(p.is_ok()) << p.status().message();
  auto c = parse_model_config(p.value().config, arch + "/" + name);
  EXPECT_TRUE(c.is_ok()) << c.status().message();
  return c.value();
}

// The make-model presets with real MoE shapes, through the same planner as `longctx plan
// --preset`: the MLA latent per token, and weights that match the published sizes.
TEST(Planner, DeepSeekV3PresetKvIsTheLatentAndWeightsAre671B) {
  const ModelConfig c = preset("deepseek_v3", "671b");
  auto p = plan_layout(c, request(8, 141, 131072, 8, 1));  // fp8 weights, bf16 KV
  ASSERT_TRUE(p.is_ok());
  EXPECT_EQ(p->kv_bytes_per_token, (c.kv_lora_rank + c.qk_rope_head_dim) * c.num_layers * 2.0);
  EXPECT_EQ(p->kv_bytes_per_token, (512 + 64) * 61 * 2.0);
  EXPECT_EQ(p->num_kv_heads, 1);
  EXPECT_NEAR(p->weights_bytes / 1e9, 671.0, 3.0);  // 1 byte per weight: bytes = parameters
  ASSERT_NE(find(*p, 8, 1), nullptr);
  EXPECT_NEAR(find(*p, 8, 1)->weights_bytes_per_rank, p->weights_bytes / 8, 1.0);
  ASSERT_TRUE(p->fits) << p->error;
  EXPECT_EQ(p->recommended.flags(), "--tp 8 --dcp 8");
  expect_layouts_agree(*p, 61);
}

TEST(Planner, MixtralAndQwen3MoePresetsPriceAllExperts) {
  // Mixtral-8x7B: 46.7B parameters, 8 kv heads of 128 over 32 layers.
  auto mx = plan_layout(preset("mixtral", "8x7b"), request(2, 80, 32768));
  ASSERT_TRUE(mx.is_ok());
  EXPECT_EQ(mx->kv_bytes_per_token, 2.0 * 32 * 8 * 128 * 2);
  EXPECT_NEAR(mx->weights_bytes / 2 / 1e9, 46.7, 0.2);
  ASSERT_TRUE(mx->fits) << mx->error;
  EXPECT_EQ(mx->recommended.tp, 2);  // 87 GiB of bf16 weights do not fit one 80 GiB GPU
  EXPECT_NEAR(mx->recommended.weights_bytes_per_rank / 1e9, 46.7, 0.2);
  // Qwen3-30B-A3B: 30.5B parameters fit one 80 GiB GPU; 4 kv heads of 128 over 48 layers.
  auto q = plan_layout(preset("qwen3_moe", "30b-a3b"), request(1, 80, 32768));
  ASSERT_TRUE(q.is_ok());
  EXPECT_EQ(q->kv_bytes_per_token, 2.0 * 48 * 4 * 128 * 2);
  EXPECT_NEAR(q->weights_bytes / 2 / 1e9, 30.5, 0.2);
  ASSERT_TRUE(q->fits) << q->error;
  EXPECT_EQ(q->recommended.flags(), "--tp 1");
}

}  // namespace
}  // namespace longctx
