#include "perf/step_fit.h"

#include <gtest/gtest.h>

namespace longctx {
namespace {

ModelShape toy_shape() {
  ModelShape s;
  s.num_layers = 2;
  s.hidden_size = 64;
  s.num_kv_heads = 2;
  s.layer_params_per_token = 1e6;
  s.dense_weight_params = 2e6;
  s.attn_flops_per_pair = 512;
  s.kv_bytes_per_token = 1024;
  return s;
}

std::vector<MeasuredStep> shapes() {
  std::vector<MeasuredStep> steps;
  for (int64_t batch : {1, 4, 16})
    for (int64_t prompt : {16, 256, 2048}) {
      steps.push_back({std::vector<ChunkWork>(static_cast<size_t>(batch), ChunkWork{0, prompt}), 0});
      steps.push_back({std::vector<ChunkWork>(static_cast<size_t>(batch), ChunkWork{prompt, 1}), 0});
    }
  return steps;
}

// Steps priced by a known calibration come back with that calibration: a GPU-like one
// (no regime switch: the scaled roofline GEMM term) and a CPU-like one (small_m = 4: the
// regime terms, and no GEMM term).
TEST(StepFit, RecoversTheCoefficientsThatMadeTheTimes) {
  const HardwareProfile hw{"t", 1e10, 1e10, 1e10, 0, 0, 1e12, 0, {}};
  const RooflineCostModel roofline(toy_shape(), hw);
  StepCalibration truth;
  truth.layer_params_per_token = 1e6;
  truth.attn_flops_per_pair = 512;
  truth.step_s = 2e-3;
  truth.per_seq_s = 1.5e-3;
  truth.per_token_s = 2e-5;
  truth.per_pair_s = 4e-9;
  truth.per_kv_token_s = 3e-7;
  truth.gemm_scale = 1.2;
  std::vector<MeasuredStep> steps = shapes();
  auto fit_to = [&](const StepCalibration& t, int64_t small_m) {
    HardwareProfile with = hw;
    with.calibrations = {t};
    const RooflineCostModel priced(toy_shape(), with);
    for (MeasuredStep& s : steps) s.seconds = priced.step_time_s(s.chunks);
    return fit_step_calibration(steps, roofline, "toy", small_m);
  };
  auto gpu = fit_to(truth, 0);
  ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
  EXPECT_NEAR(gpu->step_s, truth.step_s, 1e-9);
  EXPECT_NEAR(gpu->per_seq_s, truth.per_seq_s, 1e-9);
  EXPECT_NEAR(gpu->per_token_s, truth.per_token_s, 1e-10);
  EXPECT_NEAR(gpu->per_pair_s, truth.per_pair_s, 1e-13);
  EXPECT_NEAR(gpu->per_kv_token_s, truth.per_kv_token_s, 1e-11);
  EXPECT_NEAR(gpu->gemm_scale, truth.gemm_scale, 1e-6);
  EXPECT_EQ(gpu->small_m, 0);
  EXPECT_LT(gpu->rms_rel_error, 1e-9);
  EXPECT_EQ(gpu->num_samples, static_cast<int64_t>(steps.size()));
  EXPECT_EQ(gpu->layer_params_per_token, 1e6);

  truth.gemm_scale = 0;
  truth.per_narrow_token_s = 2e-3;
  truth.wide_gemm_s = 4e-3;
  truth.wide_head_s = 6e-3;
  truth.small_m = 4;
  auto cpu = fit_to(truth, 4);
  ASSERT_TRUE(cpu.is_ok()) << cpu.status().to_string();
  EXPECT_NEAR(cpu->step_s, truth.step_s, 1e-9);
  EXPECT_NEAR(cpu->per_seq_s, truth.per_seq_s, 1e-9);
  EXPECT_NEAR(cpu->per_token_s, truth.per_token_s, 1e-10);
  EXPECT_NEAR(cpu->per_pair_s, truth.per_pair_s, 1e-13);
  EXPECT_NEAR(cpu->per_kv_token_s, truth.per_kv_token_s, 1e-11);
  EXPECT_NEAR(cpu->per_narrow_token_s, truth.per_narrow_token_s, 1e-9);
  EXPECT_NEAR(cpu->wide_gemm_s, truth.wide_gemm_s, 1e-9);
  EXPECT_NEAR(cpu->wide_head_s, truth.wide_head_s, 1e-9);
  EXPECT_EQ(cpu->gemm_scale, 0.0);
  EXPECT_EQ(cpu->small_m, 4);
  EXPECT_LT(cpu->rms_rel_error, 1e-9);
}

// Times that a negative coefficient would fit best get the best non-negative fit.
TEST(StepFit, CoefficientsNeverNegative) {
  const HardwareProfile hw{"t", 1e10, 1e10, 1e10, 0, 0, 1e12, 0, {}};
  const RooflineCostModel roofline(toy_shape(), hw);
  std::vector<MeasuredStep> steps = shapes();
  // Time falls with the batch: the unconstrained fit would want per_seq < 0.
  for (MeasuredStep& s : steps) s.seconds = 0.1 / static_cast<double>(s.chunks.size());
  auto fit = fit_step_calibration(steps, roofline, "toy");
  ASSERT_TRUE(fit.is_ok());
  for (double c : {fit->step_s, fit->per_seq_s, fit->per_token_s, fit->per_pair_s, fit->per_kv_token_s, fit->gemm_scale})
    EXPECT_GE(c, 0.0);
}

TEST(StepFit, TooFewStepsIsAnError) {
  const HardwareProfile hw{"t", 1e10, 1e10, 1e10, 0, 0, 1e12, 0, {}};
  const RooflineCostModel roofline(toy_shape(), hw);
  std::vector<MeasuredStep> steps(8, MeasuredStep{{ChunkWork{0, 4}}, 0.01});
  auto fit = fit_step_calibration(steps, roofline, "toy");
  ASSERT_FALSE(fit.is_ok());
  EXPECT_NE(fit.status().message().find("at least 9"), std::string::npos);
}

}  // namespace
}  // namespace longctx
