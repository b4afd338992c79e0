// --step-log: one JSON line per step whose chunks are exactly the steps the engine ran
// (context and new tokens per request), and a clear error for a path it cannot write.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/llm_engine.h"
#include "support/engine_harness.h"
#include "support/fixtures.h"

namespace longctx {
namespace {

using testing_support::greedy_request;
using testing_support::hf_dir;

TEST(StepLog, OneLinePerStepWithTheChunksRun) {
  auto model = DenseModel::load(hf_dir("llama_gqa"));
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  const std::string path =
      (std::filesystem::temp_directory_path() / ("step_log_test_" + std::to_string(::getpid()) + ".jsonl")).string();
  EngineConfig cfg;
  cfg.num_kv_blocks = 64;
  cfg.scheduler.max_num_batched_tokens = 8;  // a 20-token prompt: chunks of 8, 8, 4
  cfg.step_log_path = path;
  auto engine = LLMEngine::create(*model, nullptr, cfg);
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  std::vector<int32_t> prompt(20);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>(3 + i);
  auto id = (*engine)->add_request(greedy_request(prompt, 3));
  ASSERT_TRUE(id.is_ok());
  int steps = 0;
  while ((*engine)->has_unfinished()) {
    (void)(*engine)->step();
    ++steps;
  }
  engine->reset();  // closes the log

  std::ifstream in(path);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  std::filesystem::remove(path);
  // Three prefill chunks, then two decodes (the third token comes from the last decode).
  const std::vector<std::pair<int64_t, int64_t>> want = {{0, 8}, {8, 8}, {16, 4}, {20, 1}, {21, 1}};
  ASSERT_EQ(lines.size(), want.size());
  EXPECT_EQ(steps, static_cast<int>(want.size()));
  double last_t = -1;
  for (size_t i = 0; i < want.size(); ++i) {
    const auto& chunks = lines[i]["chunks"];
    ASSERT_EQ(chunks.size(), 1u) << lines[i].dump();
    EXPECT_EQ(chunks[0][0].get<int64_t>(), *id);
    EXPECT_EQ(chunks[0][1].get<int64_t>(), want[i].first) << "step " << i;
    EXPECT_EQ(chunks[0][2].get<int64_t>(), want[i].second) << "step " << i;
    EXPECT_GT(lines[i]["dur"].get<double>(), 0.0);
    EXPECT_GE(lines[i]["t"].get<double>(), last_t);
    last_t = lines[i]["t"].get<double>();
    EXPECT_TRUE(lines[i]["preempted"].empty());
  }
}

TEST(StepLog, UnwritablePathIsAnErrorNamingIt) {
  auto model = DenseModel::load(hf_dir("llama_gqa"));
  ASSERT_TRUE(model.is_ok());
  EngineConfig cfg;
  cfg.num_kv_blocks = 16;
  cfg.step_log_path = "/nonexistent-dir/steps.jsonl";
  auto engine = LLMEngine::create(*model, nullptr, cfg);
  ASSERT_FALSE(engine.is_ok());
  EXPECT_NE(engine.status().message().find("--step-log /nonexistent-dir/steps.jsonl"), std::string::npos)
      << engine.status().message();
}

}  // namespace
}  // namespace longctx
