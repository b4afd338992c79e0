// Scheduler: continuous batching with chunked prefill (Sarathi-Serve / vLLM v1 style).
// Each step, under a token budget and a sequence limit: running requests first (decodes
// and unfinished prefill chunks, in policy order), then waiting requests admitted in
// policy order with their prefill chunked to fit the budget. A waiting request is
// admitted only when the KV blocks of its whole prompt fit beyond what running prefills
// have reserved (so admitted prefills never evict each other). When KV blocks run out,
// the lowest-priority running request is preempted (its blocks freed; it recomputes
// later and keeps its place in the queue). Decides only: produces a StepPlan.
//
// A running request with no uncomputed token (its sampled token not yet appended, e.g.
// still in a simulated pipeline) is skipped until the token arrives.
//
// Threading: owned by the engine's step thread; not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/status.h"
#include "kv/kv_cache_manager.h"
#include "sched/chunk_sizer.h"
#include "sched/policy.h"
#include "sched/request.h"
#include "sched/step_plan.h"

namespace longctx {

struct SchedulerConfig {
  int64_t max_num_batched_tokens = 2048;  // --max-num-batched-tokens: tokens per step
  int64_t max_num_seqs = 256;             // --max-num-seqs: running requests
  int64_t max_model_len = 0;              // prompt + max_tokens limit (the model's context)
  // Copy each request's block table into its ScheduledChunk (exec/ needs it). The
  // simulator turns it off: a 10M-token request's table is 625K blocks, copied per step.
  bool fill_block_tables = true;
  // Admit a request only when its whole prompt's KV fits beside what running prefills
  // have reserved (see schedule()). false: admit on the first chunk alone (vLLM's way),
  // which lets prefills evict each other; kept so tests can force preemption by
  // recompute with a small cache, now that prompts no longer preempt one another.
  bool reserve_prompt_kv = true;
  Status validate() const;
};

class Scheduler {
 public:
  Scheduler(const SchedulerConfig& cfg, KVCacheManager& kv, std::unique_ptr<SchedulingPolicy> policy);

  // Admission: rejects (InvalidArgument) requests that can never run — an empty
  // prompt, prompt + max_tokens beyond max_model_len or beyond the whole KV cache.
  Status add_request(Request* r);
  // Builds the next step. `now_s` feeds time-aware policies.
  StepPlan schedule(double now_s);
  // After exec/ ran `plan` (and the engine appended sampled tokens): advances each
  // chunk's request and registers newly full blocks with the prefix cache.
  void on_step_done(const StepPlan& plan);
  // Removes a request wherever it is (finished, aborted) and frees its blocks.
  void finish(RequestId id);

  int64_t num_running() const { return static_cast<int64_t>(running_.size()); }
  int64_t num_waiting() const { return static_cast<int64_t>(waiting_.size()); }
  bool has_unfinished() const { return !running_.empty() || !waiting_.empty(); }
  const SchedulerConfig& config() const { return cfg_; }
  const SchedulingPolicy& policy() const { return *policy_; }
  // Sizes every chunk of more than one token (adaptive chunking). Not owned; nullptr
  // (the default): a chunk is whatever the token budget leaves.
  void set_chunk_sizer(const ChunkSizer* sizer) { chunk_sizer_ = sizer; }

 private:
  void preempt(Request* r, StepPlan& plan);
  Request* find(RequestId id) const;
  // Blocks running prefills still need for the rest of their known tokens (reserved at
  // admission, not yet allocated).
  int64_t reserved_prefill_blocks() const;
  int64_t size_chunk(const Request& r, int64_t start, int64_t num_new, const StepPlan& plan) const;

  SchedulerConfig cfg_;
  KVCacheManager& kv_;
  std::unique_ptr<SchedulingPolicy> policy_;
  const ChunkSizer* chunk_sizer_ = nullptr;
  std::vector<Request*> running_;
  std::vector<Request*> waiting_;
};

}  // namespace longctx
