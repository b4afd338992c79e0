// LLMEngine: the step loop. add_request validates and queues; each step() schedules
// (sched/), runs the plan (exec/), samples, appends, checks stop conditions, frees
// finished requests' blocks and returns the outputs to stream.
//
// Threading: single-threaded by design — the server gives it one thread that owns it
// and hands requests over through a queue.
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
#include "engine/stop_checker.h"
#include "exec/model_runner.h"
#include "kv/kv_cache_manager.h"
#include "model/dense_model.h"
#include "model/paged_kv_cache.h"
#include "ops/cpu/sampling.h"
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
  Status validate() const;
};

class LLMEngine {
 public:
  // tokenizer may be null (token ids in, token ids out; stop strings then rejected).
  static Result<std::unique_ptr<LLMEngine>> create(const DenseModel& model, const Tokenizer* tokenizer,
                                                   EngineConfig cfg);

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
  int64_t num_kv_blocks() const { return cache_.shape().num_blocks; }
  double now_s() const;

 private:
  struct Sequence;  // one continuation: the scheduler's Request plus sampling/detok state

  LLMEngine(const DenseModel& model, const Tokenizer* tokenizer, EngineConfig cfg, KVCacheShape shape);
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
  EngineMetrics metrics_;
  std::vector<int32_t> eos_ids_;
  std::map<RequestId, std::unique_ptr<Sequence>> sequences_;  // by sequence id
  std::vector<RequestOutput> pending_outputs_;                 // e.g. aborts, reported at the next step
  RequestId next_id_ = 1;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace longctx
