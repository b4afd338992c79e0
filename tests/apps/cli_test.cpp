// The `longctx` binary end to end: what a user types, what they get back.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/safetensors.h"
#include "support/run_cli.h"

namespace {

namespace fs = std::filesystem;
const std::string kHf = std::string(LONGCTX_TEST_DATA_DIR) + "/hf/";

using longctx::testing_support::CliResult;
using longctx::testing_support::run_cli;

TEST(Cli, GenerateWithPromptIdsReproducesTheTransformersGreedyTokens) {
  // llama_gqa prompt 1 (33 tokens) and its greedy continuation from golden.safetensors.
  auto ck = longctx::Checkpoint::open(kHf + "llama_gqa/golden.safetensors").value();
  const longctx::Tensor ids = ck.get("prompt_1_ids").value().to(longctx::DType::kI64);
  const longctx::Tensor greedy = ck.get("prompt_1_greedy").value().to(longctx::DType::kI64);
  std::string csv;
  for (int64_t i = 0; i < ids.numel(); ++i) {
    if (i) csv += ',';
    csv += std::to_string(ids.data<int64_t>()[i]);
  }
  CliResult r = run_cli("generate --model " + kHf + "llama_gqa --prompt-ids " + csv + " --max-tokens " +
                        std::to_string(greedy.numel()) + " --json --ignore-eos");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(static_cast<int64_t>(j["token_ids"].size()), greedy.numel());
  for (int64_t i = 0; i < greedy.numel(); ++i)
    EXPECT_EQ(j["token_ids"][static_cast<size_t>(i)].get<int64_t>(), greedy.data<int64_t>()[i]) << i;
  EXPECT_TRUE(j["text"].is_null());  // the fixture has no tokenizer
}

TEST(Cli, BadInputGivesAClearErrorAndExitCodeOne) {
  CliResult r = run_cli("generate --model " + kHf + "llama_gqa --prompt-ids 5,x --max-tokens 2");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("--prompt-ids: 'x'"), std::string::npos) << r.out;
  r = run_cli("generate --model " + kHf + "llama_gqa --prompt-ids 5,999 --max-tokens 2");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("token id 999"), std::string::npos) << r.out;
  r = run_cli("generate --model /nonexistent/model --prompt-ids 5 --max-tokens 2");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("/nonexistent/model"), std::string::npos) << r.out;
  r = run_cli("tokenize --model " + kHf + "llama_gqa --text hi");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("tokenizer.json"), std::string::npos) << r.out;
}

// The golden prompt i of llama_gqa as comma-separated ids, and its greedy continuation.
std::pair<std::string, std::vector<int64_t>> golden_prompt(int i) {
  auto ck = longctx::Checkpoint::open(kHf + "llama_gqa/golden.safetensors").value();
  const std::string p = "prompt_" + std::to_string(i) + "_";
  const longctx::Tensor ids = ck.get(p + "ids").value().to(longctx::DType::kI64);
  const longctx::Tensor greedy = ck.get(p + "greedy").value().to(longctx::DType::kI64);
  std::string csv;
  for (int64_t k = 0; k < ids.numel(); ++k) {
    if (k) csv += ',';
    csv += std::to_string(ids.data<int64_t>()[k]);
  }
  return {csv, std::vector<int64_t>(greedy.data<int64_t>(), greedy.data<int64_t>() + greedy.numel())};
}

TEST(Cli, GenerateUnderParallelLayoutsGivesTheTransformersTokens) {
  const auto [csv, greedy] = golden_prompt(2);  // 300 tokens
  for (const char* layout : {"--tp 2", "--tp 4 --dcp 2", "--cp 2 --max-num-batched-tokens 128",
                             "--kvp 2 --kvp-shard-tokens 160", "--pp 2 --spp-chunk 64", "--tp 2 --pp 2 --cp 2",
                             "--helix --kvp 2 --tp 2 --kvp-shard-tokens 160"}) {
    CliResult r = run_cli("generate --model " + kHf + "llama_gqa --prompt-ids " + csv + " --max-tokens " +
                              std::to_string(greedy.size()) + " --json --ignore-eos --threads-per-rank 1 " + layout,
                          "2>/dev/null");
    ASSERT_EQ(r.code, 0) << layout << ": " << r.out;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["token_ids"].get<std::vector<int64_t>>(), greedy) << layout;
    EXPECT_EQ(j["finish_reason"], "length") << layout;
  }
}

TEST(Cli, BatchFileUnderALayout) {
  const fs::path batch = fs::temp_directory_path() / ("longctx_cli_layout_" + std::to_string(::getpid()) + ".jsonl");
  std::vector<std::vector<int64_t>> expected;
  {
    std::ofstream out(batch);
    for (int i = 0; i < 4; ++i) {
      const auto [csv, greedy] = golden_prompt(i);
      out << R"({"prompt_token_ids": [)" << csv << R"(], "max_tokens": )" << greedy.size()
          << R"(, "ignore_eos": true})" << "\n";
      expected.push_back(greedy);
    }
  }
  CliResult r = run_cli("generate --model " + kHf + "llama_gqa --batch-file " + batch.string() +
                            " --tp 2 --cp 2 --max-num-batched-tokens 256 --threads-per-rank 1",
                        "2>/dev/null");
  ASSERT_EQ(r.code, 0) << r.out;
  size_t pos = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const size_t end = r.out.find('\n', pos);
    ASSERT_NE(end, std::string::npos) << r.out;
    auto j = nlohmann::json::parse(r.out.substr(pos, end - pos));
    EXPECT_EQ(j["outputs"][0]["token_ids"].get<std::vector<int64_t>>(), expected[i]) << "line " << i;
    pos = end + 1;
  }
  fs::remove_all(batch);
}

TEST(Cli, AnImpossibleLayoutIsAUsageErrorNamingTheRule) {
  const std::string model = " --model " + kHf + "llama_gqa";
  CliResult r = run_cli("generate" + model + " --prompt-ids 1,2,3 --tp 2 --dcp 2");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--dcp 2"), std::string::npos) << r.out;
  r = run_cli("generate" + model + " --prompt-ids 1,2,3 --tp 3");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--tp 3 must divide the model's 4 query heads"), std::string::npos) << r.out;
  r = run_cli("generate" + model + " --prompt-ids 1,2,3 --kvp 2");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--kvp-shard-tokens"), std::string::npos) << r.out;
  r = run_cli("generate" + model + " --prompt-ids 1,2,3 --helix --tp 4 --kvp 2 --kvp-shard-tokens 16");
  EXPECT_EQ(r.code, 2) << r.out;  // 2 kv heads: Helix never replicates KV
  EXPECT_NE(r.out.find("--helix"), std::string::npos) << r.out;
  r = run_cli("generate" + model + " --prompt-ids 1,2,3 --pp 3");  // 2 layers
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--pp 3"), std::string::npos) << r.out;
  // serve refuses to start (before it binds a port).
  r = run_cli("serve" + model + " --port 0 --cp 0");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--cp 0 must be at least 1"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("listening"), std::string::npos) << r.out;
}

TEST(Cli, PlanTakesTheSameLayoutFlags) {
  const std::string plan = "plan --model " + std::string(LONGCTX_TEST_DATA_DIR) +
                           "/plan/llama-3.1-70b --gpus 16 --gpu-mem 80 --context 131072 --json";
  // 8 kv heads at tp 16: each head on two ranks (2x duplication) until dcp 2 shards them.
  CliResult r = run_cli(plan + " --tp 16", "2>/dev/null");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["given"]["flags"], "--tp 16");
  EXPECT_EQ(j["given"]["kv_duplication"], 2);
  r = run_cli(plan + " --tp 16 --dcp 2", "2>/dev/null");
  ASSERT_EQ(r.code, 0) << r.out;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["given"]["kv_duplication"], 1);
  EXPECT_GT(j["given"]["max_context_tokens"].get<int64_t>(), 0);
  r = run_cli(plan + " --tp 16 --dcp 4");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--dcp 4"), std::string::npos) << r.out;
  r = run_cli(plan + " --tp 8 --pp 4");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--gpus is 16"), std::string::npos) << r.out;
}

TEST(Cli, MakeModelThenChatTokenizeAndBatchFile) {
  const fs::path dir = fs::temp_directory_path() / ("longctx_cli_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  CliResult r = run_cli("make-model --arch qwen3 --preset tiny --out " + dir.string() + " --tokenizers-dir " +
              LONGCTX_TOKENIZERS_DIR);
  ASSERT_EQ(r.code, 0) << r.out;

  r = run_cli("tokenize --model " + dir.string() + " --text 'Hello, world!' --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["ids"], nlohmann::json({9707, 11, 1879, 0}));

  r = run_cli("generate --model " + dir.string() + " --chat 'Hi there' --max-tokens 5 --json --ignore-eos");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["token_ids"].size(), 5u);
  EXPECT_EQ(j["prompt_token_ids"][0], 151644);  // <|im_start|>: the chat template was applied

  const fs::path batch = dir / "requests.jsonl";
  std::ofstream(batch) << R"({"prompt": "Once upon a time", "max_tokens": 4, "ignore_eos": true})" << "\n"
                       << R"({"prompt_token_ids": [1, 2, 3], "max_tokens": 3, "n": 2, "temperature": 1.0, "seed": 7, "ignore_eos": true})"
                       << "\n"
                       << "not json\n"
                       << R"({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "top_p": 7})" << "\n"
                       << R"({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "ignore_eos": true})" << "\n";
  r = run_cli("generate --model " + dir.string() + " --batch-file " + batch.string() + " --max-num-seqs 4");
  ASSERT_EQ(r.code, 0) << r.out;
  std::vector<nlohmann::json> lines;
  size_t pos = 0;
  while (pos < r.out.size()) {
    size_t end = r.out.find('\n', pos);
    lines.push_back(nlohmann::json::parse(r.out.substr(pos, end - pos)));
    pos = end + 1;
  }
  ASSERT_EQ(lines.size(), 5u) << r.out;
  EXPECT_EQ(lines[0]["outputs"][0]["token_ids"].size(), 4u);
  EXPECT_EQ(lines[0]["outputs"][0]["finish_reason"], "length");
  EXPECT_EQ(lines[1]["outputs"].size(), 2u);
  EXPECT_NE(lines[2]["error"].get<std::string>().find("line 3"), std::string::npos);
  EXPECT_NE(lines[3]["error"].get<std::string>().find("top_p"), std::string::npos);
  EXPECT_EQ(lines[4]["outputs"][0]["token_ids"].size(), 2u);
  fs::remove_all(dir);
}

}  // namespace
