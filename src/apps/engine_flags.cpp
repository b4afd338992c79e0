#include "apps/engine_flags.h"

#include <cstdio>

#include "apps/layout_flags.h"
#include "core/logging.h"
#ifdef LONGCTX_HAS_CUDA
#include "exec/cuda_model_runner.h"
#include "exec/cuda_parallel_runner.h"
#include "model/sharded_dense_model.h"
#endif

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
  cmd.add_option("--device", device,
                 "Where the model runs: cpu, or cuda (dense Llama/Qwen2/Qwen3; with --tp/--pp/--cp/--dcp/--kvp "
                 "the ranks run on the visible GPUs, rank r on GPU r % count)")
      ->capture_default_str();
  cmd.add_option(
         "--gpu-memory-utilization", gpu_memory_utilization,
         "--device cuda: fraction of the GPU's memory for weights, activations and the KV cache (the KV "
         "pool is what is left; --kv-cache-memory is not used)")
      ->capture_default_str();
  cmd.add_flag("--enforce-eager", enforce_eager, "--device cuda: no CUDA graphs for decode steps");
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

int EngineFlags::check_device_or_exit(const std::string& model_dir) const {
  auto usage = [](const std::string& msg) {
    std::fprintf(stderr, "error: %s\n", msg.c_str());
    return kLayoutErrorExitCode;  // a usage error, as CLI11's
  };
  if (device != "cpu" && device != "cuda") return usage("--device must be cpu or cuda, got '" + device + "'");
  if (!on_gpu()) return 0;
#ifndef LONGCTX_HAS_CUDA
  (void)model_dir;
  return usage(
      "--device cuda: this build has no CUDA backend (configure with -DLONGCTX_CUDA=ON on a machine "
      "with nvcc), use --device cpu");
#else
  if (!(gpu_memory_utilization > 0.0 && gpu_memory_utilization <= 1.0))
    return usage("--gpu-memory-utilization must be in (0, 1], got " + std::to_string(gpu_memory_utilization));
  auto mc = load_model_config(model_dir);
  if (!mc.is_ok()) return 0;  // the loader reports it
  if (mc->is_moe() || mc->is_mla())
    return usage(std::string("--device cuda runs dense Llama, Qwen2 and Qwen3 models; ") +
                 architecture_name(mc->arch) + " (MoE or MLA) runs on --device cpu only so far");
  if (!has_layout()) return 0;
  if (spp_chunk > 0)
    return usage("--spp-chunk: sequence pipeline parallelism runs on CPU ranks only so far; drop it or use "
                 "--device cpu");
  // What the GPU model's ranks run (Helix, EP, CP with DCP/KVP, ... are refused with its message).
  auto ranks = ParallelLayout::create(layout(), ShardedDenseModel::layout_dims(*mc));
  if (!ranks.is_ok()) return usage(ranks.status().message());
  cuda::CudaModelOptions o;
  o.block_size = block_size;
  if (Status st = CudaParallelRunner::check_layout(*mc, *ranks, o); !st.is_ok())
    return usage("--device cuda: " + st.message() + "; use --device cpu for this layout");
  return 0;
#endif
}

void EngineFlags::adjust_load_options(ModelLoadOptions& load, bool dtype_given) const {
  if (on_gpu() && !dtype_given) load.dtype = DType::kBF16;
}

Result<std::unique_ptr<ModelExecutor>> EngineFlags::make_executor(const DenseModel& model,
                                                                  const EngineConfig& cfg) const {
  if (!on_gpu()) return std::unique_ptr<ModelExecutor>();
#ifndef LONGCTX_HAS_CUDA
  (void)model, (void)cfg;
  return invalid_argument("--device cuda: this build has no CUDA backend");
#else
  cuda::CudaModelOptions o;
  o.max_num_batched_tokens = cfg.scheduler.max_num_batched_tokens;
  o.max_num_seqs = cfg.scheduler.max_num_seqs;
  o.block_size = cfg.block_size;
  o.max_model_len = cfg.scheduler.max_model_len;  // 0: the config's, as the engine's
  o.gpu_memory_utilization = gpu_memory_utilization;
  o.cuda_graphs = !enforce_eager;
  if (has_layout()) {
    // The ranks as one executor: the engine sees one pool of global blocks (every rank's
    // model maps them to the K/V it keeps), so its own config has one rank (to_config).
    auto rank_layout = ParallelLayout::create(layout(), ShardedDenseModel::layout_dims(model.config()));
    if (!rank_layout.is_ok()) return rank_layout.status();
    CudaParallelRunnerOptions ro;
    ro.model = o;
    auto ranks = CudaParallelRunner::create(model.config(), model.weights(), *rank_layout, ro);
    if (!ranks.is_ok()) return Status(ranks.status().code(), "--device cuda: " + ranks.status().message());
    LCTX_LOG_INFO("--device cuda: {}", (*ranks)->describe());
    for (int r = 0; r < (*ranks)->world_size(); ++r) {
      const cuda::MemoryPlan& p = (*ranks)->model(r).memory_plan();
      LCTX_LOG_INFO("--device cuda: rank {} on GPU {}: weights {}, KV cache {} ({} bytes per engine block)", r,
                    (*ranks)->device_of(r), cuda::gib(p.weight_bytes), cuda::gib(p.kv_bytes), p.bytes_per_block);
    }
    return std::unique_ptr<ModelExecutor>(std::move(*ranks));
  }
  auto runner = CudaModelRunner::create(model.config(), model.weights(), o);
  if (!runner.is_ok()) return Status(runner.status().code(), "--device cuda: " + runner.status().message());
  const cuda::MemoryPlan& plan = (*runner)->model().memory_plan();
  LCTX_LOG_INFO("--device cuda: {}", plan.to_string());
  return std::unique_ptr<ModelExecutor>(std::move(*runner));
#endif
}

Result<std::unique_ptr<LLMEngine>> EngineFlags::create_engine(const DenseModel& model,
                                                              const Tokenizer* tokenizer,
                                                              const EngineConfig& cfg) const {
  auto executor = make_executor(model, cfg);
  if (!executor.is_ok()) return executor.status();
  if (!*executor) return LLMEngine::create(model, tokenizer, cfg);
  return LLMEngine::create(model, tokenizer, cfg, std::move(*executor));
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
  c.hardware = hardware;
  c.deadlines.ttft_slo_s = ttft_slo_s;
  c.deadlines.ttft_slo_per_token_s = ttft_slo_per_token_s;
  c.adaptive_chunking = adaptive_chunking;
  c.chunking.tbt_slo_s = tbt_slo_s;
  c.chunking.min_chunk = min_chunk;
  c.chunking.long_prefill_share = long_prefill_share;
  c.seed = seed;
  // Under --device cuda the executor runs the layout's ranks (make_executor): the engine
  // itself sees one rank with the executor's pool of global blocks.
  if (on_gpu()) {
    c.parallel = ParallelConfig{};
    c.parallel.block_size = block_size;
  } else {
    c.parallel = layout();
  }
  c.spp_chunk_tokens = spp_chunk;
  c.threads_per_rank = threads_per_rank;
  c.step_log_path = step_log;
  return c;
}

}  // namespace longctx::apps
