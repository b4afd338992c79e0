// `--device`: cpu (default) or cuda. What a build without the CUDA backend, an unknown
// device, and the cases the GPU engine refuses (layouts its ranks lack, MoE, MLA) answer: each a
// usage error (exit 2) naming what is supported, before any weight loads.
#include <gtest/gtest.h>

#include <string>

#include "support/run_cli.h"

namespace {

using longctx::testing_support::CliResult;
using longctx::testing_support::run_cli;

const std::string kHf = std::string(LONGCTX_TEST_DATA_DIR) + "/hf/";

std::string generate(const std::string& model, const std::string& extra) {
  return "generate --model " + kHf + model + " --prompt-ids 1,2,3 --max-tokens 2 " + extra;
}

TEST(DeviceCli, AnUnknownDeviceIsAUsageError) {
  const CliResult r = run_cli(generate("llama_gqa", "--device tpu"));
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--device must be cpu or cuda, got 'tpu'"), std::string::npos) << r.out;
}

TEST(DeviceCli, CpuIsTheDefaultAndGivesTheSameTokens) {
  const CliResult a = run_cli(generate("llama_gqa", ""), "2>/dev/null");
  const CliResult b = run_cli(generate("llama_gqa", "--device cpu"), "2>/dev/null");
  ASSERT_EQ(a.code, 0);
  ASSERT_EQ(b.code, 0);
  EXPECT_EQ(a.out, b.out);
  EXPECT_FALSE(a.out.empty());
}

#ifndef LONGCTX_BINARY_HAS_CUDA
TEST(DeviceCli, CudaInABuildWithoutTheBackendIsAUsageError) {
  for (const char* cmd : {"generate", "serve"}) {
    const std::string args = std::string(cmd) == "generate"
                                 ? generate("llama_gqa", "--device cuda")
                                 : "serve --model " + kHf + "llama_gqa --port 0 --device cuda";
    const CliResult r = run_cli(args);
    EXPECT_EQ(r.code, 2) << cmd << ": " << r.out;
    EXPECT_NE(r.out.find("this build has no CUDA backend"), std::string::npos) << cmd << ": " << r.out;
  }
}
#else
// With the backend: the refusals come before CUDA is touched, so they hold on a machine
// without a GPU too (CI); a plain run there fails cleanly (exit 1, the CUDA error named).
// Layouts run on GPU ranks (exec/cuda_parallel_runner.h) except what the GPU model lacks:
// refused with its message.
TEST(DeviceCli, CudaRefusesLayoutsTheGpuLacksMoeAndMla) {
  struct Case {
    std::string args, says;
  } cases[] = {
      {generate("llama_gqa", "--device cuda --helix --kvp 2 --kvp-shard-tokens 16"), "the Helix exchange"},
      {generate("llama_gqa", "--device cuda --tp 4 --dcp 2 --cp 2"), "does not combine --cp with --dcp or --kvp"},
      {generate("llama_gqa", "--device cuda --pp 2 --spp-chunk 64"), "--spp-chunk"},
      {generate("mixtral_moe", "--device cuda"), "runs dense Llama, Qwen2 and Qwen3 models"},
      {generate("deepseek_v3_mla", "--device cuda"), "runs dense Llama, Qwen2 and Qwen3 models"},
      {generate("llama_gqa", "--device cuda --gpu-memory-utilization 1.5"), "--gpu-memory-utilization"},
  };
  for (const Case& c : cases) {
    const CliResult r = run_cli(c.args);
    EXPECT_EQ(r.code, 2) << c.args << ": " << r.out;
    EXPECT_NE(r.out.find(c.says), std::string::npos) << c.args << ": " << r.out;
  }
}

TEST(DeviceCli, CudaRunsOrFailsCleanly) {
  for (const char* layout : {"", " --tp 2"}) {
    const CliResult r = run_cli(
        generate("llama_gqa", std::string("--device cuda --max-model-len 512 --gpu-memory-utilization 0.2") + layout));
    if (r.code != 0) {
      EXPECT_EQ(r.code, 1) << layout << ": " << r.out;
      EXPECT_NE(r.out.find("error: --device cuda: "), std::string::npos) << layout << ": " << r.out;
    }
  }
}
#endif

}  // namespace
