// Engine flags shared by every command that runs the engine (generate --batch-file,
// serve): registered once, turned into an EngineConfig in one place.
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

  void add_to(CLI::App& cmd);
  EngineConfig to_config() const;
};

}  // namespace longctx::apps
