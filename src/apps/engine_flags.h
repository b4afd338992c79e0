// Engine flags shared by every command that runs the engine (generate, serve):
// registered once, turned into an EngineConfig in one place. They include the parallel
// layout's flags (apps/layout_flags.h) and --spp-chunk.
#pragma once

#include <CLI/CLI.hpp>

#include "engine/llm_engine.h"

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
  std::string step_log;

  void add_to(CLI::App& cmd);
  EngineConfig to_config() const;
  // The layout as the engine will build it (block size from --block-size).
  ParallelConfig layout() const;
  bool has_layout() const;  // more than one rank
};

}  // namespace longctx::apps
