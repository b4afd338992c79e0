#include "perf/cost_model.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "sched/test_cost_models.h"

namespace longctx {
namespace {

ModelConfig llama_8b() { return testing::llama_8b_config(); }

// A hand-priced machine: 1 FLOP/s and 1 byte/s scaled so the terms are readable.
HardwareProfile unit_hw() { return {"unit", 1.0, 1.0, 1.0, 0.0, 0.0, 1e30, 0.0, {}}; }

TEST(ModelShape, Llama8bNumbers) {
  const ModelShape s = model_shape(llama_8b());
  // DESIGN.md §6: KV bytes per token = 2 · L · H · d · bytes = 2·32·8·128·2.
  EXPECT_DOUBLE_EQ(s.kv_bytes_per_token, 131072.0);
  // Llama-3.1-8B has 8.03e9 parameters, 0.53e9 of them the input embedding (not read
  // per step beyond the looked-up rows): layers + LM head ≈ 7.5e9.
  EXPECT_NEAR(s.dense_weight_params, 7.50e9, 0.01e9);
  EXPECT_NEAR(s.layer_params_per_token, 6.98e9, 0.01e9);
  EXPECT_DOUBLE_EQ(s.attn_flops_per_pair, 4.0 * 32 * 32 * 128);
}

TEST(RooflineCostModel, AttentionPairsAreCausal) {
  ModelShape s;  // only attention costs
  s.attn_flops_per_pair = 1;
  RooflineCostModel m(s, unit_hw());
  const ChunkWork c{10, 4};  // queries see 11, 12, 13, 14 keys
  EXPECT_DOUBLE_EQ(m.breakdown({&c, 1}).attention_s, 50.0);
  // A whole prompt prefilled at once or in two chunks: the same query-key pairs.
  const ChunkWork whole{0, 100}, first{0, 60}, second{60, 40};
  EXPECT_DOUBLE_EQ(m.breakdown({&whole, 1}).attention_s,
                   m.breakdown({&first, 1}).attention_s + m.breakdown({&second, 1}).attention_s);
}

TEST(RooflineCostModel, DecodeIsMemoryBoundAndPrefillComputeBound) {
  const ModelShape s = model_shape(llama_8b());
  const HardwareProfile h100 = builtin_hardware("h100").value();
  RooflineCostModel m(s, h100);
  const ChunkWork decode{100, 1};
  const StepCost d = m.breakdown({&decode, 1});
  // One decode reads all weights once: ~15 GB / 3 TB/s ≈ 5 ms.
  EXPECT_NEAR(d.gemm_s, s.dense_weight_params * 2 / h100.mem_bytes_per_s, 1e-9);
  EXPECT_GT(d.gemm_s, 2.0 * s.layer_params_per_token / h100.gemm_flops_per_s * 100);
  // A batch of 32 short decodes costs barely more than one (the weights are read once;
  // 32 × 101 tokens of KV are 0.4 GB next to 15 GB of weights).
  std::vector<ChunkWork> batch(32, decode);
  EXPECT_LT(m.step_time_s(batch), 1.1 * m.step_time_s({&decode, 1}));
  // ... but long contexts make decode KV-bound: 32 × 100K tokens is 420 GB.
  std::vector<ChunkWork> long_batch(32, ChunkWork{100000, 1});
  EXPECT_GT(m.breakdown(long_batch).attention_s, 10 * m.breakdown(long_batch).gemm_s);
  // An 8K-token prefill is compute bound: FLOPs / rate.
  const ChunkWork prefill{0, 8192};
  const StepCost p = m.breakdown({&prefill, 1});
  EXPECT_NEAR(p.gemm_s,
              (2.0 * s.layer_params_per_token * 8192 + 2.0 * s.lm_head_params) / h100.gemm_flops_per_s, 1e-9);
  EXPECT_DOUBLE_EQ(p.overhead_s, h100.step_overhead_s);
}

TEST(RooflineCostModel, MonotoneInChunkAndContext) {
  RooflineCostModel m(model_shape(llama_8b()), builtin_hardware("h100").value(), 8);
  double prev = 0;
  for (int64_t q : {1, 64, 512, 2048, 8192}) {
    const ChunkWork c{100000, q};
    const double t = m.step_time_s({&c, 1});
    EXPECT_GT(t, prev);
    prev = t;
  }
  const ChunkWork near{0, 2048}, far{1000000, 2048};
  EXPECT_GT(m.step_time_s({&far, 1}), 10 * m.step_time_s({&near, 1}));
}

TEST(RooflineCostModel, TensorParallelSplitsWorkAndAddsAllReduces) {
  const ModelShape s = model_shape(llama_8b());
  const HardwareProfile h100 = builtin_hardware("h100").value();
  RooflineCostModel one(s, h100, 1), eight(s, h100, 8);
  const ChunkWork c{0, 8192};
  EXPECT_NEAR(eight.breakdown({&c, 1}).gemm_s, one.breakdown({&c, 1}).gemm_s / 8, 1e-12);
  EXPECT_EQ(one.breakdown({&c, 1}).comm_s, 0.0);
  EXPECT_GT(eight.breakdown({&c, 1}).comm_s, 0.0);
  // 8 GPUs hold more KV than 1: 8·80 GB·0.9 − 16 GB over 128 KiB per token.
  EXPECT_GT(eight.kv_capacity_tokens(), 4'000'000);
  EXPECT_LT(one.kv_capacity_tokens(), 500'000);
  // tp 16 > 8 kv heads: each head is held twice.
  EXPECT_DOUBLE_EQ(RooflineCostModel(s, h100, 16).kv_replication(), 2.0);
}

TEST(ConstantCostModel, SameForEveryNonEmptyStep) {
  ConstantCostModel m(0.25);
  const ChunkWork a{0, 1}, b{1000000, 4096};
  EXPECT_EQ(m.step_time_s({&a, 1}), 0.25);
  EXPECT_EQ(m.step_time_s({&b, 1}), 0.25);
  EXPECT_EQ(m.step_time_s({}), 0.0);
  EXPECT_EQ(m.prefill_time_s(5, 5), 0.0);
}

TEST(HardwareProfile, JsonRoundTripAndErrors) {
  const HardwareProfile h = builtin_hardware("h200").value();
  auto back = hardware_from_json(to_json(h), "test");
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->mem_bytes_per_s, h.mem_bytes_per_s);
  EXPECT_EQ(back->name, "h200");
  nlohmann::json j = to_json(h);
  j.erase("mem_bytes_per_s");
  auto missing = hardware_from_json(j, "prof.json");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("mem_bytes_per_s"), std::string::npos);
  auto unknown = builtin_hardware("tpu");
  ASSERT_FALSE(unknown.is_ok());
  EXPECT_NE(unknown.status().message().find("h100"), std::string::npos);
}

}  // namespace
}  // namespace longctx

namespace longctx {
namespace {

TEST(HardwareProfile, NameOrFile) {
  EXPECT_EQ(hardware_profile("h100").value().name, "h100");
  const std::string path = ::testing::TempDir() + "/longctx_hw_profile.json";
  HardwareProfile p = builtin_hardware("cpu").value();
  p.name = "measured";
  {
    std::ofstream out(path);
    out << to_json(p).dump();
  }
  auto loaded = hardware_profile(path);
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  EXPECT_EQ(loaded->name, "measured");
  auto bad = hardware_profile("no-such-profile");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("h200"), std::string::npos);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace longctx
