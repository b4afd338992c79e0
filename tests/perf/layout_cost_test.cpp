// The layout terms of RooflineCostModel on a hand-made shape and a unit machine, so
// each expected value is a few multiplications (docs/scheduling.md, "Layouts").
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "perf/cost_model.h"

namespace longctx {
namespace {

// 1 FLOP/s, 1 byte/s everywhere; no fixed costs.
HardwareProfile unit_hw(double link = 0, double net = 0) {
  return {"unit", 1.0, 1.0, 1.0, link, 0.0, 1e30, net, {}};
}

// 4 layers, hidden 2 (bf16: 4 bytes a token), 8 kv heads, 1 parameter per token, 1
// attention FLOP per pair, no weights to read, 1 KV byte per token.
ModelShape toy_shape() {
  ModelShape s;
  s.num_layers = 4;
  s.hidden_size = 2;
  s.num_heads = 8;
  s.num_kv_heads = 8;
  s.layer_params_per_token = 0.5;  // 2 · 0.5 = 1 GEMM FLOP per token
  s.attn_flops_per_pair = 1;
  s.kv_bytes_per_token = 1e-9;  // negligible next to the FLOPs
  return s;
}

TEST(LayoutCost, TensorParallelDividesAndAllReduces) {
  const ChunkWork c{0, 8};  // 8 GEMM FLOPs, 36 pairs
  LayoutShape tp2;
  tp2.tp = 2;
  const RooflineCostModel one(toy_shape(), unit_hw()), two(toy_shape(), unit_hw(10.0), tp2);
  EXPECT_DOUBLE_EQ(one.breakdown({&c, 1}).gemm_s, 8.0);
  EXPECT_DOUBLE_EQ(two.breakdown({&c, 1}).gemm_s, 4.0);
  EXPECT_NEAR(two.breakdown({&c, 1}).attention_s, 18.0, 1e-6);
  // 2 all-reduces × 4 layers × 2(n-1)/n (= 1) × 8 tokens · 4 bytes / 10 B/s = 25.6 s.
  EXPECT_DOUBLE_EQ(two.breakdown({&c, 1}).comm_s, 25.6);
}

TEST(LayoutCost, KvpShardsOneLongRequestsAttention) {
  LayoutShape l;
  l.kvp = 4;
  l.kvp_shard_tokens = 100;
  const RooflineCostModel m(toy_shape(), unit_hw(), l);
  EXPECT_EQ(m.kvp_groups(50), 1);
  EXPECT_EQ(m.kvp_groups(250), 3);
  EXPECT_EQ(m.kvp_groups(1000), 4);  // at most kvp
  // A decode over 299 tokens of context: 300 pairs over 3 groups = 100 s (the balanced
  // share over 4 groups, 75 s, is smaller: one request cannot use the 4th group).
  const ChunkWork decode{299, 1};
  EXPECT_NEAR(m.breakdown({&decode, 1}).attention_s, 100.0, 1e-6);
  // Four short decodes go to four groups: each group one request's 10 pairs.
  const std::vector<ChunkWork> shorts(4, ChunkWork{9, 1});
  EXPECT_NEAR(m.breakdown(shorts).attention_s, 10.0, 1e-6);
  // GEMMs of one request stay in its group; four requests spread over four.
  EXPECT_DOUBLE_EQ(m.breakdown({&decode, 1}).gemm_s, 1.0);
  EXPECT_DOUBLE_EQ(m.breakdown(shorts).gemm_s, 1.0);
}

TEST(LayoutCost, KvpMergesCrossTheNetwork) {
  LayoutShape l;
  l.kvp = 2;
  l.kvp_shard_tokens = 10;
  const RooflineCostModel m(toy_shape(), unit_hw(0, 1.0), l);
  // A 4-token chunk at context 16 spans 2 groups: per layer 2 · (1/2) · 4 tokens · 4
  // bytes = 16 bytes; 4 layers = 64; the busiest group's share is half: 32 s at 1 B/s.
  const ChunkWork c{16, 4};
  EXPECT_DOUBLE_EQ(m.breakdown({&c, 1}).comm_s, 32.0);
}

TEST(LayoutCost, ContextParallelSplitsPrefillNotDecode) {
  LayoutShape l;
  l.cp = 4;
  const RooflineCostModel m(toy_shape(), unit_hw(), l);
  const ChunkWork prefill{0, 8}, decode{7, 1};
  EXPECT_DOUBLE_EQ(m.breakdown({&prefill, 1}).gemm_s, 2.0);  // 8 FLOPs / 4 ranks
  EXPECT_NEAR(m.breakdown({&prefill, 1}).attention_s, 9.0, 1e-6);  // 36 pairs / 4
  EXPECT_DOUBLE_EQ(m.breakdown({&decode, 1}).gemm_s, 1.0);  // one token: one rank
  EXPECT_NEAR(m.breakdown({&decode, 1}).attention_s, 2.0, 1e-6);  // its KV is on 4 ranks
}

TEST(LayoutCost, PipelineStageTimeIsAShareOfTheLayers) {
  LayoutShape l;
  l.pp = 4;
  const RooflineCostModel m(toy_shape(), unit_hw(), l);
  const ChunkWork c{0, 8};
  EXPECT_EQ(m.pipeline_stages(), 4);
  EXPECT_DOUBLE_EQ(m.breakdown({&c, 1}).gemm_s, 2.0);
  EXPECT_NEAR(m.breakdown({&c, 1}).attention_s, 9.0, 1e-6);
}

TEST(LayoutCost, KvCapacityCountsOneWeightCopyPerGroup) {
  ModelShape s = toy_shape();
  s.dense_weight_params = 50;  // 100 bytes of weights
  s.kv_bytes_per_token = 1;
  HardwareProfile hw = unit_hw();
  hw.memory_bytes = 1000;
  LayoutShape l;
  l.tp = 2;
  l.kvp = 3;
  l.pp = 2;
  const RooflineCostModel m(s, hw, l);
  // 12 GPUs · 1000 · 0.5 − 3 groups · 100 bytes = 5700 tokens.
  EXPECT_EQ(m.kv_capacity_tokens(0.5), 5700);
  EXPECT_EQ(m.num_gpus(), 12);
  // The default shard: the capacity over the groups (spill only when a group is full).
  EXPECT_EQ(m.layout().kvp_shard_tokens, (m.kv_capacity_tokens() + 2) / 3);
}

TEST(LayoutCost, DcpRemovesKvReplication) {
  ModelShape s = toy_shape();
  s.num_kv_heads = 2;
  LayoutShape l;
  l.tp = 8;
  EXPECT_DOUBLE_EQ(RooflineCostModel(s, unit_hw(), l).kv_replication(), 4.0);
  l.dcp = 4;
  EXPECT_DOUBLE_EQ(RooflineCostModel(s, unit_hw(), l).kv_replication(), 1.0);
}

TEST(LayoutShape, ValidateNamesTheFlag) {
  LayoutShape l;
  l.kvp = 0;
  EXPECT_NE(l.validate().message().find("--kvp"), std::string::npos);
  l = LayoutShape{};
  l.tp = 6;
  l.dcp = 4;
  EXPECT_NE(l.validate().message().find("--dcp"), std::string::npos);
  l.dcp = 3;
  EXPECT_TRUE(l.validate().is_ok());
  EXPECT_EQ(l.to_string(), "tp=6 dcp=3");
}

TEST(StepCalibration, ReplacesFixedCostsForItsShapeOnly) {
  HardwareProfile hw = unit_hw();
  hw.step_overhead_s = 100;
  StepCalibration cal;
  cal.layer_params_per_token = 0.5;
  cal.attn_flops_per_pair = 1;
  cal.step_s = 3;
  cal.per_seq_s = 2;
  cal.per_token_s = 0.25;
  cal.per_pair_s = 0.5;
  cal.per_kv_token_s = 0.125;
  cal.gemm_scale = 2;
  cal.small_m = 4;
  cal.wide_gemm_s = 1;  // 9 tokens > 4: paid
  cal.wide_head_s = 64; // 2 sequences: not paid
  cal.per_narrow_token_s = 0.5;  // steps of up to 4 tokens only
  hw.calibrations.push_back(cal);
  const RooflineCostModel m(toy_shape(), hw);
  const std::vector<ChunkWork> w = {{0, 8}, {9, 1}};  // 9 tokens, 36 + 10 pairs, 8 + 10 KV tokens, 2 seqs
  const StepCost c = m.breakdown(w);
  // gemm: 2 · roofline (9 tokens · 1 FLOP) + 0.25 · 9; attention 0.5 · 46 + 0.125 · 18; 3 + 2 · 2.
  EXPECT_DOUBLE_EQ(c.gemm_s, 2 * 9.0 + 0.25 * 9 + 1);
  // Five decodes: past small_m in sequences too (and 5 tokens), so both regime terms.
  const std::vector<ChunkWork> decodes(5, ChunkWork{3, 1});
  EXPECT_DOUBLE_EQ(m.breakdown(decodes).gemm_s, 2 * 5.0 + 0.25 * 5 + 1 + 64);
  // Four: neither.
  const std::vector<ChunkWork> four(4, ChunkWork{3, 1});
  EXPECT_DOUBLE_EQ(m.breakdown(four).gemm_s, 2 * 4.0 + 0.25 * 4 + 0.5 * 4);
  EXPECT_DOUBLE_EQ(c.attention_s, 23.0 + 2.25);
  EXPECT_DOUBLE_EQ(c.overhead_s, 7.0);
  // Another shape falls back to the roofline and the table's step overhead.
  ModelShape other = toy_shape();
  other.layer_params_per_token = 5;
  EXPECT_DOUBLE_EQ(RooflineCostModel(other, hw).breakdown(w).overhead_s, 100.0);
}

TEST(StepCalibration, JsonRoundTripAndErrors) {
  HardwareProfile hw = unit_hw();
  StepCalibration cal;
  cal.model = "qwen3/tiny";
  cal.layer_params_per_token = 1e6;
  cal.attn_flops_per_pair = 512;
  cal.step_s = 1e-3;
  cal.per_seq_s = 2e-5;
  cal.per_token_s = 3e-6;
  cal.per_pair_s = 4e-9;
  cal.per_kv_token_s = 6e-8;
  cal.wide_gemm_s = 2e-3;
  cal.per_narrow_token_s = 5e-3;
  cal.wide_head_s = 3e-3;
  cal.small_m = 4;
  cal.gemm_scale = 1.5;
  cal.num_samples = 12;
  cal.rms_rel_error = 0.05;
  hw.calibrations.push_back(cal);
  hw.net_bytes_per_s = 7;
  auto back = hardware_from_json(to_json(hw), "t");
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  ASSERT_EQ(back->calibrations.size(), 1u);
  const StepCalibration& b = back->calibrations[0];
  EXPECT_EQ(b.model, "qwen3/tiny");
  EXPECT_EQ(b.per_pair_s, 4e-9);
  EXPECT_EQ(b.per_kv_token_s, 6e-8);
  EXPECT_EQ(b.wide_gemm_s, 2e-3);
  EXPECT_EQ(b.per_narrow_token_s, 5e-3);
  EXPECT_EQ(b.wide_head_s, 3e-3);
  EXPECT_EQ(b.small_m, 4);
  EXPECT_EQ(b.gemm_scale, 1.5);
  EXPECT_EQ(b.num_samples, 12);
  EXPECT_EQ(back->net_bytes_per_s, 7);
  nlohmann::json j = to_json(hw);
  j["calibrations"][0]["per_token_s"] = -1;
  auto bad = hardware_from_json(j, "prof.json");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("calibrations[0]"), std::string::npos);
  EXPECT_NE(bad.status().message().find("per_token_s"), std::string::npos);
  // Tables written before the KV-token term load with it at 0; a negative one is refused.
  j = to_json(hw);
  j["calibrations"][0].erase("per_kv_token_s");
  auto old = hardware_from_json(j, "old.json");
  ASSERT_TRUE(old.is_ok()) << old.status().to_string();
  EXPECT_EQ(old->calibrations[0].per_kv_token_s, 0.0);
  j["calibrations"][0]["per_kv_token_s"] = -1e-9;
  auto neg = hardware_from_json(j, "prof.json");
  ASSERT_FALSE(neg.is_ok());
  EXPECT_NE(neg.status().message().find("per_kv_token_s"), std::string::npos);
}

}  // namespace
}  // namespace longctx

namespace longctx {
namespace {

// The pricer (sums of a base plan reused for many candidate chunks) agrees with pricing
// the whole plan, under every layout term.
TEST(LayoutCost, PricerMatchesStepTime) {
  LayoutShape l;
  l.tp = 2;
  l.cp = 2;
  l.kvp = 3;
  l.pp = 2;
  l.kvp_shard_tokens = 100;
  ModelShape s = toy_shape();
  s.dense_weight_params = 10;
  const RooflineCostModel m(s, unit_hw(5.0, 2.0), l);
  const std::vector<ChunkWork> base = {{0, 8}, {250, 1}, {9, 1}};
  const auto price = m.pricer(base);
  for (ChunkWork extra : {ChunkWork{0, 1}, ChunkWork{120, 64}, ChunkWork{1000, 3}}) {
    std::vector<ChunkWork> all = base;
    all.push_back(extra);
    EXPECT_DOUBLE_EQ(price(extra), m.step_time_s(all));
  }
  // The generic CostModel fallback does the same by copying.
  const ConstantCostModel c(0.5);
  EXPECT_EQ(c.pricer({})(ChunkWork{0, 4}), 0.5);
}

}  // namespace
}  // namespace longctx
