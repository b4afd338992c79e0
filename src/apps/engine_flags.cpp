#include "apps/engine_flags.h"

namespace longctx::apps {

void EngineFlags::add_to(CLI::App& cmd) {
  cmd.add_option("--max-num-batched-tokens", max_num_batched_tokens, "Tokens per engine step (prefill chunk budget)")
      ->capture_default_str();
  cmd.add_option("--max-num-seqs", max_num_seqs, "Requests running at once")->capture_default_str();
  cmd.add_option("--block-size", block_size, "KV-cache block size in tokens (a power of two)")->capture_default_str();
  cmd.add_option("--kv-cache-memory", kv_cache_memory, "KV-cache budget in bytes")->capture_default_str();
  cmd.add_option("--max-model-len", max_model_len, "Context limit (default: the model's max_position_embeddings)");
  cmd.add_flag("--enable-prefix-caching,!--no-enable-prefix-caching", enable_prefix_caching,
               "Share KV blocks of equal prefixes between requests")
      ->capture_default_str();
  cmd.add_option("--policy", policy, "Scheduling policy")->capture_default_str();
  cmd.add_option("--engine-seed", seed, "Seed for requests that bring none")->capture_default_str();
}

EngineConfig EngineFlags::to_config() const {
  EngineConfig c;
  c.scheduler.max_num_batched_tokens = max_num_batched_tokens;
  c.scheduler.max_num_seqs = max_num_seqs;
  c.scheduler.max_model_len = max_model_len;
  c.block_size = block_size;
  c.kv_cache_memory_bytes = kv_cache_memory;
  c.enable_prefix_caching = enable_prefix_caching;
  c.policy = policy;
  c.seed = seed;
  return c;
}

}  // namespace longctx::apps
