#include "apps/engine_flags.h"

#include "apps/layout_flags.h"

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
  cmd.add_option("--policy", policy, "Scheduling policy: fcfs, srpt, edf, lrs (Medha least relative slack)")
      ->capture_default_str();
  cmd.add_option("--hardware", hardware, "Cost-model hardware for edf/lrs/adaptive chunking: cpu, h100, h200, or a `bench profile` file")
      ->capture_default_str();
  cmd.add_option("--ttft-slo", ttft_slo_s, "Base TTFT deadline in seconds (edf, lrs)")->capture_default_str();
  cmd.add_option("--ttft-slo-per-token", ttft_slo_per_token_s, "TTFT allowance per prompt token in seconds")
      ->capture_default_str();
  cmd.add_flag("--adaptive-chunking", adaptive_chunking,
               "Size prefill chunks by the cost model so steps stay within --tbt-slo");
  cmd.add_option("--tbt-slo", tbt_slo_s, "Time-between-tokens target in seconds (adaptive chunking)")
      ->capture_default_str();
  cmd.add_option("--min-chunk", min_chunk, "Smallest adaptive prefill chunk in tokens")->capture_default_str();
  cmd.add_option("--long-prefill-share", long_prefill_share, "Largest share of a step's budget for one long prefill")
      ->capture_default_str();
  cmd.add_option("--engine-seed", seed, "Seed for requests that bring none")->capture_default_str();
  add_layout_flags(cmd, parallel);
  cmd.add_option("--spp-chunk", spp_chunk,
                 "Sequence pipeline parallelism (--pp > 1): stream a prefill chunk through the stages in pieces "
                 "of this many tokens (0 = off)")
      ->capture_default_str()
      ->group("Parallel layout");
  cmd.add_option("--step-log", step_log,
                 "Write one JSON line per engine step (start, duration, chunks) to this file: "
                 "bench/step_fidelity.py compares it with the cost model");
  cmd.add_option("--threads-per-rank", threads_per_rank, "OpenMP threads per rank (0 = cores / ranks)")
      ->capture_default_str()
      ->group("Parallel layout");
}

ParallelConfig EngineFlags::layout() const {
  ParallelConfig p = parallel;
  p.block_size = block_size;
  return p;
}

bool EngineFlags::has_layout() const { return int64_t{parallel.tp} * parallel.pp * parallel.cp * parallel.kvp > 1; }

EngineConfig EngineFlags::to_config() const {
  EngineConfig c;
  c.scheduler.max_num_batched_tokens = max_num_batched_tokens;
  c.scheduler.max_num_seqs = max_num_seqs;
  c.scheduler.max_model_len = max_model_len;
  c.block_size = block_size;
  c.kv_cache_memory_bytes = kv_cache_memory;
  c.enable_prefix_caching = enable_prefix_caching;
  c.policy = policy;
  c.hardware = hardware;
  c.deadlines.ttft_slo_s = ttft_slo_s;
  c.deadlines.ttft_slo_per_token_s = ttft_slo_per_token_s;
  c.adaptive_chunking = adaptive_chunking;
  c.chunking.tbt_slo_s = tbt_slo_s;
  c.chunking.min_chunk = min_chunk;
  c.chunking.long_prefill_share = long_prefill_share;
  c.seed = seed;
  c.parallel = layout();
  c.spp_chunk_tokens = spp_chunk;
  c.threads_per_rank = threads_per_rank;
  c.step_log_path = step_log;
  return c;
}

}  // namespace longctx::apps
