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
  uint64_t seed = 0;

  void add_to(CLI::App& cmd);
  EngineConfig to_config() const;
};

}  // namespace longctx::apps
