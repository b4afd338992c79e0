// LLMEngine: the step loop. add_request validates and queues; each step() schedules
// (sched/), runs the plan (exec/), samples, appends, checks stop conditions, frees
// finished requests' blocks and returns the outputs to stream.
//
// The plan runs on an executor (exec/model_executor.h): by default the CPU ModelRunner over
// the engine's own paged cache; given one at create() (the GPU's CudaModelRunner, --device
// cuda), that one, and the KV pool then has the executor's block count (its memory plan),
// not --kv-cache-memory's.
//
// Under a parallel layout (EngineConfig::parallel with a world > 1) the plan runs on the
// ranks of a ParallelModelRunner instead of the single-rank ModelRunner; the scheduler
// then budgets KV in "sequence blocks" (see docs/engine.md: each rank holds ~1/(dcp·cp·kvp)
// of a request's tokens, so the per-rank budget admits that many times longer contexts).
//
// Threading: single-threaded by design — the server gives it one thread that owns it
// and hands requests over through a queue (the parallel runner's rank threads are its own).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "engine/generation_request.h"
#include "engine/metrics.h"
#include "engine/request_output.h"
#include "engine/step_log.h"
#include "engine/stop_checker.h"
#include "exec/model_executor.h"
#include "exec/model_runner.h"
#include "exec/parallel_model_runner.h"
#include "kv/kv_cache_manager.h"
#include "model/dense_model.h"
#include "model/paged_kv_cache.h"
#include "ops/cpu/sampling.h"
#include "parallel/parallel_layout.h"
#include "perf/cost_model.h"
#include "sched/chunk_sizer.h"
#include "sched/scheduler.h"
#include "text/tokenizer.h"

namespace longctx {

struct EngineConfig {
  SchedulerConfig scheduler;              // max_model_len 0 = the model's max_position_embeddings
  int64_t block_size = 16;                // --block-size
  int64_t kv_cache_memory_bytes = int64_t{1} << 30;  // --kv-cache-memory
  int64_t num_kv_blocks = 0;              // overrides the memory budget when > 0 (tests)
  bool enable_prefix_caching = true;      // --enable-prefix-caching / --no-enable-prefix-caching
  std::string policy = "fcfs";            // --policy: fcfs | srpt | edf | lrs
  // Time-aware policies and adaptive chunking ask a roofline cost model of this model on
  // this hardware ("cpu", "h100", "h200"; perf/hardware.h) for predicted step times.
  std::string hardware = "cpu";           // --hardware
  DeadlineConfig deadlines;               // --ttft-slo, --ttft-slo-per-token (edf, lrs)
  bool adaptive_chunking = false;         // --adaptive-chunking
  AdaptiveChunkConfig chunking;           // --tbt-slo, --min-chunk, --long-prefill-share
  int64_t max_waiting = 4096;             // queue bound: beyond it add_request is ResourceExhausted (429)
  EngineLimits limits;
  uint64_t seed = 0;                      // seeds requests that bring none
  // --tp --pp --cp --dcp --kvp --dcp-interleave --kvp-shard-tokens (apps/layout_flags.h).
  // block_size is taken from the field above. World 1: the single-rank ModelRunner.
  ParallelConfig parallel;
  int64_t spp_chunk_tokens = 0;           // --spp-chunk: SPP piece size when pp > 1 (0 = off)
  int threads_per_rank = 0;               // OpenMP threads per rank (0: cores / world)
  std::string step_log_path;              // --step-log: one JSON line per step (engine/step_log.h)
  Status validate() const;
};

class LLMEngine {
 public:
  // tokenizer may be null (token ids in, token ids out; stop strings then rejected).
  static Result<std::unique_ptr<LLMEngine>> create(const DenseModel& model, const Tokenizer* tokenizer,
                                                   EngineConfig cfg);
  // Runs the plans on `executor` (one rank only: a parallel layout is InvalidArgument).
  // `model` still gives the config, the vocabulary and the cost model's shape.
  static Result<std::unique_ptr<LLMEngine>> create(const DenseModel& model, const Tokenizer* tokenizer,
                                                   EngineConfig cfg, std::unique_ptr<ModelExecutor> executor);

  ~LLMEngine();

  // Validates (InvalidArgument naming the field) and queues; ResourceExhausted when the
  // waiting queue is full.
  Result<RequestId> add_request(GenerationRequest req);
  // Aborts every continuation of the request, freeing its blocks; it reports
  // finish_reason "abort" in the next step's outputs. Unknown ids are ignored.
  void abort(RequestId id);
  // One engine step. An error here (the model failing) finishes the affected
  // requests with "abort" rather than taking the engine down.
  std::vector<RequestOutput> step();
  bool has_unfinished() const { return !sequences_.empty(); }

  const EngineMetrics& metrics() const { return metrics_; }
  const EngineConfig& config() const { return cfg_; }
  const KVCacheManager& kv_manager() const { return *kv_; }
  // Blocks of the KV manager's pool, the null block included. Under a layout these are
  // sequence blocks: kv_blocks_per_rank_budget() · dcp · cp · kvp (+1).
  int64_t num_kv_blocks() const { return num_kv_blocks_; }
  // Blocks one rank may hold (its --kv-cache-memory); = num_kv_blocks() − 1 on one rank.
  int64_t kv_blocks_per_rank_budget() const { return rank_block_budget_; }
  // The layout the engine runs (one rank when no parallel flags were given).
  const ParallelLayout& layout() const { return layout_; }
  // The parallel runner, null on one rank (tests read per-rank KV through it).
  ParallelModelRunner* parallel_runner() const { return parallel_.get(); }
  double now_s() const;

 private:
  struct Sequence;  // one continuation: the scheduler's Request plus sampling/detok state

  LLMEngine(const DenseModel& model, const Tokenizer* tokenizer, EngineConfig cfg, KVCacheShape shape);
  void refresh_gauges();
  void fit_plan_to_ranks(StepPlan& plan, std::vector<RequestOutput>& outs);
  void start_sequence(Sequence& s);
  void finish_sequence(Sequence& s, const std::string& reason, std::vector<RequestOutput>& outs);
  void append_token(Sequence& s, int32_t token, const cpu::Sampler::Sample* sample, RequestOutput& out);

  const DenseModel& model_;
  const Tokenizer* tokenizer_;
  EngineConfig cfg_;
  PagedKVCache cache_;
  std::unique_ptr<KVCacheManager> kv_;
  std::unique_ptr<RooflineCostModel> cost_model_;
  std::unique_ptr<AdaptiveChunkSizer> chunk_sizer_;
  std::unique_ptr<Scheduler> scheduler_;
  ModelRunner runner_;
  std::unique_ptr<ModelExecutor> executor_;  // replaces runner_ when set (e.g. the GPU's)
  ParallelLayout layout_;
  std::unique_ptr<ParallelModelRunner> parallel_;
  int64_t num_kv_blocks_ = 0, rank_block_budget_ = 0;
  EngineMetrics metrics_;
  std::unique_ptr<StepLog> step_log_;  // null unless --step-log
  std::vector<int32_t> eos_ids_;
  std::map<RequestId, std::unique_ptr<Sequence>> sequences_;  // by sequence id
  std::vector<RequestOutput> pending_outputs_;                 // e.g. aborts, reported at the next step
  RequestId next_id_ = 1;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace longctx
