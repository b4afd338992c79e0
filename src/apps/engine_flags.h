// Engine flags shared by every command that runs the engine (generate, serve):
// registered once, turned into an EngineConfig in one place. They include the parallel
// layout's flags (apps/layout_flags.h) and --spp-chunk.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "engine/llm_engine.h"
#include "exec/model_executor.h"
#include "model/dense_model.h"

namespace longctx::apps {

struct EngineFlags {
  int64_t max_num_batched_tokens = 2048;
  int64_t max_num_seqs = 256;
  int64_t block_size = 16;
  int64_t kv_cache_memory = int64_t{1} << 30;
  int64_t max_model_len = 0;
  bool enable_prefix_caching = true;
  std::string policy = "fcfs";
  std::string hardware = "cpu";
  double ttft_slo_s = 0.5, ttft_slo_per_token_s = 0.0, tbt_slo_s = 0.1, long_prefill_share = 0.4;
  int64_t min_chunk = 256;
  bool adaptive_chunking = false;
  uint64_t seed = 0;
  ParallelConfig parallel;
  int64_t spp_chunk = 0;
  int threads_per_rank = 0;
  // --device cuda: the engine runs the GPU model on one GPU (exec/cuda_model_runner.h), or
  // under a layout on GPU ranks (exec/cuda_parallel_runner.h).
  std::string device = "cpu";
  double gpu_memory_utilization = 0.9;
  bool enforce_eager = false;
  std::string step_log;

  void add_to(CLI::App& cmd);
  EngineConfig to_config() const;
  // The layout as the engine will build it (block size from --block-size).
  ParallelConfig layout() const;
  bool has_layout() const;  // more than one rank
  bool on_gpu() const { return device == "cuda"; }

  // --device against this build and the model in `model_dir` (before the weights load): an
  // unknown device, cuda in a build without the backend, cuda with a model family the GPU
  // model lacks (MoE, MLA) or a layout its ranks do not run (Helix, EP, CP with DCP/KVP,
  // --spp-chunk: the model's message) print "error: ..." and return 2; else 0.
  int check_device_or_exit(const std::string& model_dir) const;
  // How the weights load: bf16 on the host for --device cuda (what the GPU holds) unless
  // --dtype says otherwise.
  void adjust_load_options(ModelLoadOptions& load, bool dtype_given) const;
  // The executor for `cfg` (null: the engine's CPU runner). --device cuda uploads the weights
  // and plans the GPU memory here; with a layout it builds the GPU ranks (the layout from
  // these flags: cfg, from to_config, has one rank under --device cuda).
  Result<std::unique_ptr<ModelExecutor>> make_executor(const DenseModel& model,
                                                       const EngineConfig& cfg) const;
  // LLMEngine::create on make_executor's executor.
  Result<std::unique_ptr<LLMEngine>> create_engine(const DenseModel& model, const Tokenizer* tokenizer,
                                                   const EngineConfig& cfg) const;
};

}  // namespace longctx::apps
