// CudaParallelRunner: executes the engine's StepPlans on the GPU ranks of a ParallelLayout
// (TP, PP, DCP, KVP, CP; world > 1) — the GPU twin of ParallelModelRunner behind the same
// ModelExecutor interface as the single-GPU CudaModelRunner (built only with CUDA).
//
// Ranks: one persistent worker thread per rank owns that rank's CudaDenseModel, its stream
// and its communicators (STYLE.md §18); rank r runs on GPU r % num_devices. The ranks talk
// through the device-staged communicator (parallel_nccl/device_staged_communicator.h: host
// rendezvous, two PCIe copies per call), which works whatever the number of GPUs, ranks
// sharing one included. NCCL with one GPU per rank is not wired here (the longctx binary
// does not link NCCL, and a failing rank must be able to abort its peers' collectives).
//
// A step: every rank runs the same ForwardBatch built from the plan (the engine's global
// block ids: each rank's model maps them to the K/V it keeps, rank_kv_placement.h) in
// lockstep; the root rank (the last stage's tp = cp = kvp = 0) returns what the single-GPU
// runner returns — ids of the rows sampled on the GPU, fp32 logits of the host rows.
//
// KV pool: one pool of engine blocks, the same on every rank. With
// CudaModelOptions::num_kv_blocks > 0 exactly that; otherwise planned over the GPUs: each
// rank is built with a small pool and runs one profiling step of max_num_batched_tokens
// tokens (every rank at once: the step's collectives need them all), then what is left of
// each GPU's budget (--gpu-memory-utilization × its memory, less everything its ranks hold)
// is split among its ranks by their bytes per engine block; the pool is the minimum over
// the GPUs, and every rank is rebuilt with it (the weights are uploaded twice).
//
// Failure: a rank that fails (a Status or an exception) aborts the ranks' HostWorld, so
// ranks blocked in a collective wake; run() returns the failing rank's error as "rank r: …".
// The models' communicators point into that world and their caches may be half written, so
// every later run() is refused with that error — never a hang, never a silently wrong
// cache. Plans over the step limits are refused before any rank runs.
//
// Threading: create(), run() and the accessors are called from one thread (the engine's);
// the workers touch only their own rank while run() waits for them.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "exec/model_executor.h"
#include "model/config.h"
#include "model/dense_weights.h"
#include "model_cuda/cuda_dense_model.h"
#include "parallel/parallel_layout.h"

namespace longctx {

class HostWorld;

struct CudaParallelRunnerOptions {
  // Every rank's model options (the engine's step budget, block size, context limit,
  // --gpu-memory-utilization per GPU; num_kv_blocks > 0: exactly that pool). stream and
  // cuda_graphs are the runner's (multi-rank steps run eager).
  cuda::CudaModelOptions model;
  int num_devices = 0;  // GPUs to spread the ranks over; 0 = every visible one
};

// One GPU's memory after every rank on it was built with a small pool and ran the profiling step.
struct GpuRanksMemory {
  size_t total_bytes = 0;
  size_t used_bytes = 0;       // total − free: every rank's weights, activations, small pool, libraries
  size_t bytes_per_block = 0;  // one engine block on each of its ranks, summed
  int ranks = 0;
};

class CudaParallelRunner : public ModelExecutor {
 public:
  // The pool every GPU's ranks fit: min over GPUs of (utilization · total − used) /
  // bytes_per_block; InvalidArgument naming the tightest GPU's numbers when it is under
  // min_blocks (one sequence of max_model_len, and the null block). Pure arithmetic (tests).
  static Result<int64_t> pool_over_gpus(const std::vector<GpuRanksMemory>& gpus, double utilization,
                                        int64_t min_blocks, int64_t max_model_len, std::string* tightest = nullptr);
  // Whether the GPU model runs `layout` on `cfg` (the model's own create() checks, before
  // any weight or device is touched): Helix, EP, CP with DCP/KVP, a block size CP/DCP do
  // not divide... are refused with the model's message. The CLI asks this before loading.
  static Status check_layout(const ModelConfig& cfg, const ParallelLayout& layout,
                             const cuda::CudaModelOptions& opts);
  static Result<std::unique_ptr<CudaParallelRunner>> create(const ModelConfig& cfg, const DenseWeights& weights,
                                                            const ParallelLayout& layout,
                                                            const CudaParallelRunnerOptions& opts);
  ~CudaParallelRunner() override;
  CudaParallelRunner(const CudaParallelRunner&) = delete;
  CudaParallelRunner& operator=(const CudaParallelRunner&) = delete;

  Result<StepLogits> run(const StepPlan& plan, const RequestLookup& request,
                         const RequestPredicate& all_positions,
                         const DeviceSamplingLookup& device_sample) override;
  int64_t num_kv_blocks() const override { return num_kv_blocks_; }
  int64_t block_size() const override { return opts_.model.block_size; }

  const ParallelLayout& layout() const { return layout_; }
  int world_size() const { return layout_.world_size(); }
  int num_devices() const { return num_devices_; }
  int device_of(int rank) const { return rank % num_devices_; }
  int root_rank() const { return root_; }
  // Rank r's model (tests; do not call into it while run() is in flight).
  const cuda::CudaDenseModel& model(int rank) const { return *ranks_[static_cast<size_t>(rank)].model; }
  // One line: the layout, GPUs, the pool and where it came from.
  std::string describe() const;
  // Rows sampled on the GPU / returned to the host so far (tests, logs).
  int64_t device_sampled_rows() const { return device_rows_; }
  int64_t host_rows() const { return host_rows_; }

  // Tests: called on each rank's worker right before its forward; a non-OK status (or an
  // exception) fails that rank. Must not call back into the runner.
  using RankHook = std::function<Status(int rank)>;
  void set_step_hook(RankHook hook) { step_hook_ = std::move(hook); }

 private:
  struct Rank {
    int device = 0;
    cudaStream_t stream = nullptr;
    RankCommunicators comms;
    std::unique_ptr<cuda::CudaDenseModel> model;
  };
  using Job = std::function<Status(int rank)>;

  CudaParallelRunner(const ModelConfig& cfg, const DenseWeights& weights, ParallelLayout layout,
                     const CudaParallelRunnerOptions& opts, int num_devices);
  void worker_loop(int rank);
  // Every worker runs job(rank); waits for all. The lowest failing rank's own error (not a
  // peer's abort) as "rank r: …"; after a failure the runner is stopped (stopped_).
  Status on_ranks(const Job& job);
  // Builds (or rebuilds) every rank's model with a pool of `blocks` engine blocks.
  Status build_models(int64_t blocks);
  // The memory plan over the GPUs (num_kv_blocks == 0): the pool every GPU's ranks fit.
  Result<int64_t> plan_pool();

  ModelConfig cfg_;
  const DenseWeights* weights_ = nullptr;  // borrowed during create() only (the models hold copies)
  ParallelLayout layout_;
  CudaParallelRunnerOptions opts_;
  int num_devices_ = 1;
  int root_ = 0;
  int64_t num_kv_blocks_ = 0;
  std::string pool_source_;
  std::vector<Rank> ranks_;
  std::unique_ptr<HostWorld> world_;
  Status stopped_;  // not OK once a rank failed: every later run() returns it
  RankHook step_hook_;
  int64_t device_rows_ = 0, host_rows_ = 0;

  // Hand-off between the engine's thread and the workers.
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  const Job* job_ = nullptr;
  int64_t job_seq_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  std::vector<Status> results_;
  std::vector<char> aborted_;  // per rank: woke with CommAborted (a peer failed)
  std::vector<std::thread> workers_;
};

}  // namespace longctx
