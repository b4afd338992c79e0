// `longctx plan` through the binary: the --json contract and the exit code.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "support/run_cli.h"

namespace {

const std::string kPlan = std::string(LONGCTX_TEST_DATA_DIR) + "/plan/";

using longctx::testing_support::CliResult;
using PlanRun = CliResult;

CliResult run_plan(const std::string& args) { return longctx::testing_support::run_cli("plan " + args, "2>/dev/null"); }

TEST(PlanCli, DeepSeekR1JsonRecommendsTp8Dcp8) {
  PlanRun r = run_plan("--model " + kPlan +
                       "deepseek-r1 --gpus 8 --gpu-mem 141 --context 131072 "
                       "--weight-bytes 1 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["recommended"], "--tp 8 --dcp 8");
  EXPECT_EQ(j["kv_bytes_per_token"].get<double>(), 61.0 * (512 + 64) * 2);
  EXPECT_EQ(j["kv_duplication"], 1);
  EXPECT_EQ(j["kv_duplication_by_tp"]["8"], 8);
  EXPECT_GE(j["max_context_tokens"].get<int64_t>(), 131072);
  EXPECT_GT(j["weights_bytes_per_rank"].get<double>(), 0);
}

TEST(PlanCli, ImpossibleRequestExitsOneAndSaysWhy) {
  PlanRun r = run_plan("--model " + kPlan + "llama-3.1-70b --gpus 1 --gpu-mem 24 --context 131072 --json");
  EXPECT_EQ(r.code, 1);
  auto j = nlohmann::json::parse(r.out);
  EXPECT_FALSE(j["fits"].get<bool>());
  EXPECT_TRUE(j["recommended"].is_null());
  EXPECT_NE(j["error"].get<std::string>().find("weights do not fit"), std::string::npos);
}

}  // namespace
