// ParallelModelRunner: executes a StepPlan on the ranks of a ParallelLayout (world > 1)
// — the counterpart of ModelRunner for TP/DCP/CP/KVP/PP on CPU ranks (threads of this
// process). Does, never decides (STYLE.md §3): the scheduler's plan comes in, the
// sampled rows' logits go out as the same StepLogits.
//
// One persistent worker thread per rank owns that rank's ShardedDenseModel shard and
// its RankCommunicators; a step hands every worker the same batch (each with its own KV
// shares) and the workers run it in lockstep. Per request, each rank keeps a
// ShardedSequenceKV: created when the request is first scheduled (or restarts at
// position 0 after a preemption) and dropped by release().
//
// Sequence pipeline parallelism (Medha's SPP): with pp > 1 and spp_chunk_tokens > 0, a
// chunk longer than spp_chunk_tokens is cut into pieces of that size, piece j going into
// micro-batch j. Each worker runs its micro-batches back to back without waiting for the
// last stage: the pipeline send is buffered, so stage 0 starts piece j + 1 while stage 1
// is still on piece j. Only the last piece's logits are returned (all pieces' when the
// request asked for prompt logprobs).
//
// Failure: a rank that fails (a Status or an exception) aborts the HostWorld, so ranks
// blocked in a collective wake with CommAborted; run() returns the failing rank's error
// as "rank r: …" and the next run starts on a fresh world. Never a hang.
//
// Threading: run(), release() and the accessors are called from one thread (the
// engine's); the workers only touch their own rank's state while run() waits for them.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/status.h"
#include "exec/model_runner.h"
#include "model/config.h"
#include "model/dense_weights.h"
#include "model/sharded_dense_model.h"
#include "parallel/host_communicator.h"
#include "parallel/parallel_layout.h"
#include "sched/request.h"
#include "sched/step_plan.h"

namespace longctx {

struct ParallelRunnerOptions {
  // SPP piece size in tokens (pp > 1 only; 0 = a chunk goes through the stages whole).
  int64_t spp_chunk_tokens = 0;
  // KV blocks one rank may hold (its --kv-cache-memory); a step that would take a rank
  // past it is refused before any cache changes. 0 = unchecked.
  int64_t blocks_per_rank = 0;
  // OpenMP/OpenBLAS threads inside each rank (0: hardware threads / world, at least 1).
  int threads_per_rank = 0;
};

enum class MicroBatchEvent { kBegin, kEnd };
// Called on a rank's worker thread right before and after it runs micro-batch `mb` of a
// step. Tests use it to record the pipeline's order of work (and to inject a failure by
// throwing); it must not call back into the runner.
using MicroBatchObserver = std::function<void(int rank, int64_t mb, MicroBatchEvent event)>;

class ParallelModelRunner {
 public:
  static Result<std::unique_ptr<ParallelModelRunner>> create(const ModelConfig& cfg, const DenseWeights& weights,
                                                             const ParallelLayout& layout,
                                                             const ParallelRunnerOptions& opts);
  ~ParallelModelRunner();
  ParallelModelRunner(const ParallelModelRunner&) = delete;
  ParallelModelRunner& operator=(const ParallelModelRunner&) = delete;

  // As ModelRunner::run. The plan's block tables are not used: each rank stores its
  // share of a request's tokens in that request's ShardedSequenceKV.
  Result<StepLogits> run(const StepPlan& plan, const std::function<const Request&(RequestId)>& request,
                         const std::function<bool(RequestId)>& all_positions);

  // Drops every rank's KV of the request (finished, aborted, preempted). Unknown ids are ignored.
  void release(RequestId id);

  // Per-rank admission: OK when no rank would hold more than blocks_per_rank KV blocks
  // after running `plan` (ResourceExhausted naming the rank otherwise). run() refuses
  // such a plan; the engine calls this first and preempts until the plan fits.
  Status check_budget(const StepPlan& plan) const;
  // The most KV blocks one rank holds for a request of `tokens` tokens prefilled in one
  // chunk (the placement of DCP, CP and KVP): what a per-rank budget must admit.
  int64_t max_rank_blocks(int64_t tokens) const;
  int64_t blocks_per_rank_budget() const { return opts_.blocks_per_rank; }

  const ParallelLayout& layout() const { return layout_; }
  int world_size() const { return layout_.world_size(); }
  // KV blocks each rank holds now, over all requests (index: global rank).
  std::vector<int64_t> blocks_per_rank() const;
  // One request's blocks per rank (empty when the runner holds none for it).
  std::vector<int64_t> request_blocks_per_rank(RequestId id) const;
  int64_t num_sequences() const { return static_cast<int64_t>(seqs_.size()); }
  // Micro-batches the last run() issued (1 without SPP splitting).
  int64_t last_num_micro_batches() const { return last_micro_batches_; }
  void set_observer(MicroBatchObserver observer) { observer_ = std::move(observer); }

 private:
  struct RankResult {
    Status status;
    bool aborted = false;             // woke with CommAborted: another rank's failure
    std::vector<Tensor> logits;       // per micro-batch (the root rank only)
  };

  ParallelModelRunner(ParallelLayout layout, std::vector<ShardedDenseModel> models, const ParallelRunnerOptions& opts);
  void worker_loop(int rank);
  // The pieces [begin, end) of a chunk (relative to its start): one unless SPP cuts it.
  std::vector<std::pair<int64_t, int64_t>> pieces(const ScheduledChunk& c) const;

  ParallelLayout layout_;
  std::vector<ShardedDenseModel> models_;  // one per rank
  ParallelRunnerOptions opts_;
  int root_ = 0;  // the rank whose logits are returned: tp = cp = kvp = 0 of the last stage
  MicroBatchObserver observer_;

  // Per request, per rank: that rank's share of the request's KV.
  std::map<RequestId, std::vector<ShardedSequenceKV>> seqs_;
  int64_t last_micro_batches_ = 0;

  // The world the workers talk through; replaced after a failure (the aborted one is
  // kept: a worker's old communicators may still point into it until its next job).
  std::unique_ptr<HostWorld> world_;
  std::vector<std::unique_ptr<HostWorld>> retired_worlds_;
  int64_t world_generation_ = 0;

  // Hand-off between run() and the workers.
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  int64_t job_seq_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  // steps_[rank][micro-batch]: the batch that rank runs (spans into the engine's requests).
  std::vector<std::vector<std::vector<ShardedStep>>> steps_;
  std::vector<RankResult> results_;
  std::vector<std::thread> workers_;
};

}  // namespace longctx
