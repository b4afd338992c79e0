#include "exec/cuda_parallel_runner.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>

#include "exec/cuda_step_rows.h"
#include "model/forward_batch.h"
#include "parallel/communicator.h"
#include "parallel/host_communicator.h"
#include "parallel_nccl/device_staged_communicator.h"

namespace longctx {
namespace {

Status cuda_ok(cudaError_t e, const std::string& what) {
  if (e == cudaSuccess) return Status::ok();
  return internal_error(what + ": " + cudaGetErrorString(e));
}

cuda::CudaModelOptions rank_options(const cuda::CudaModelOptions& base) {
  cuda::CudaModelOptions o = base;
  // As CudaModelRunner: a chunk's prompt logprobs (every position) fit in one step.
  o.max_logit_rows = std::max(o.max_num_batched_tokens, o.max_num_seqs);
  o.cuda_graphs = false;  // multi-rank steps run eager (the model would not replay them anyway)
  return o;
}

}  // namespace

Status CudaParallelRunner::check_layout(const ModelConfig& cfg, const ParallelLayout& layout,
                                        const cuda::CudaModelOptions& opts) {
  if (layout.world_size() < 2)
    return invalid_argument("CudaParallelRunner runs layouts of more than one rank; " + layout.to_string() +
                            " is one (use CudaModelRunner)");
  // The model's own checks, in its order; with no communicators the last of them ("no
  // communicator for its … group") is the one a supported layout reaches — before any
  // weight or device is touched.
  auto m = cuda::CudaDenseModel::create(cfg, DenseWeights{}, rank_options(opts), cuda::CudaRankSpec{layout, 0, nullptr});
  if (m.is_ok()) return internal_error("CudaDenseModel accepted a rank without communicators");
  if (m.status().message().find("no communicator for its") != std::string::npos) return Status::ok();
  return m.status();
}

Result<std::unique_ptr<CudaParallelRunner>> CudaParallelRunner::create(const ModelConfig& cfg,
                                                                      const DenseWeights& weights,
                                                                      const ParallelLayout& layout,
                                                                      const CudaParallelRunnerOptions& opts) {
  LONGCTX_RETURN_IF_ERROR(check_layout(cfg, layout, opts.model));
  int visible = 0;
  const cudaError_t e = cudaGetDeviceCount(&visible);
  if (e != cudaSuccess || visible < 1)
    return internal_error(std::string("no CUDA device for the GPU ranks: ") +
                          (e != cudaSuccess ? cudaGetErrorString(e) : "none visible"));
  if (opts.num_devices < 0 || opts.num_devices > visible)
    return invalid_argument("CudaParallelRunnerOptions::num_devices " + std::to_string(opts.num_devices) +
                            " is outside [0, " + std::to_string(visible) + "] (the visible GPUs)");
  const int devices = std::min(opts.num_devices > 0 ? opts.num_devices : visible, layout.world_size());
  std::unique_ptr<CudaParallelRunner> r(new CudaParallelRunner(cfg, weights, layout, opts, devices));
  if (opts.model.num_kv_blocks > 0) {
    LONGCTX_RETURN_IF_ERROR(r->build_models(opts.model.num_kv_blocks));
    r->num_kv_blocks_ = opts.model.num_kv_blocks;
    r->pool_source_ = "given";
  } else {
    LONGCTX_ASSIGN_OR_RETURN(int64_t blocks, r->plan_pool());
    LONGCTX_RETURN_IF_ERROR(r->build_models(blocks));
    r->num_kv_blocks_ = blocks;
  }
  r->weights_ = nullptr;
  return r;
}

CudaParallelRunner::CudaParallelRunner(const ModelConfig& cfg, const DenseWeights& weights, ParallelLayout layout,
                                       const CudaParallelRunnerOptions& opts, int num_devices)
    : cfg_(cfg), weights_(&weights), layout_(std::move(layout)), opts_(opts), num_devices_(num_devices) {
  RankCoords last;
  last.pp = layout_.config().pp - 1;
  root_ = layout_.rank_of(last);
  const int n = layout_.world_size();
  world_ = std::make_unique<HostWorld>(n);
  ranks_.resize(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) ranks_[size_t(r)].device = device_of(r);
  results_.resize(static_cast<size_t>(n));
  aborted_.resize(static_cast<size_t>(n), 0);
  workers_.reserve(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) workers_.emplace_back([this, r] { worker_loop(r); });
}

CudaParallelRunner::~CudaParallelRunner() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void CudaParallelRunner::worker_loop(int rank) {
  int64_t seen = 0;
  for (;;) {
    const Job* job = nullptr;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return stop_ || job_seq_ != seen; });
      if (stop_) break;
      seen = job_seq_;
      job = job_;
    }
    Status st;
    bool aborted = false;
    try {
      st = (*job)(rank);
    } catch (const CommAborted&) {
      aborted = true;
      st = internal_error("aborted because another rank failed");
    } catch (const std::exception& e) {
      st = internal_error(e.what());
    }
    // A failing rank wakes every rank blocked on it, so the job ends instead of hanging.
    if (!st.is_ok() && !aborted) world_->abort();
    {
      std::lock_guard<std::mutex> lock(mu_);
      results_[size_t(rank)] = std::move(st);
      aborted_[size_t(rank)] = aborted ? 1 : 0;
      if (--pending_ == 0) done_cv_.notify_all();
    }
  }
  // The rank's CUDA objects go on the thread that owns them, with its device current.
  Rank& rk = ranks_[size_t(rank)];
  if (rk.stream) {
    cudaSetDevice(rk.device);
    cudaStreamSynchronize(rk.stream);
  }
  rk.model.reset();
  rk.comms = RankCommunicators{};
  if (rk.stream) cudaStreamDestroy(rk.stream);
  rk.stream = nullptr;
}

Status CudaParallelRunner::on_ranks(const Job& job) {
  const int n = world_size();
  {
    std::unique_lock<std::mutex> lock(mu_);
    job_ = &job;
    pending_ = n;
    ++job_seq_;
    work_cv_.notify_all();
    done_cv_.wait(lock, [&] { return pending_ == 0; });
    job_ = nullptr;
  }
  // The failing rank's own error (the lowest such rank), not its peers' aborts.
  Status failed;
  for (int r = 0; r < n && failed.is_ok(); ++r)
    if (!results_[size_t(r)].is_ok() && !aborted_[size_t(r)])
      failed = Status(results_[size_t(r)].code(), "rank " + std::to_string(r) + ": " + results_[size_t(r)].message());
  for (int r = 0; r < n && failed.is_ok(); ++r)
    if (!results_[size_t(r)].is_ok())
      failed = Status(results_[size_t(r)].code(), "rank " + std::to_string(r) + ": " + results_[size_t(r)].message());
  if (!failed.is_ok() && stopped_.is_ok())
    stopped_ = Status(failed.code(), "the GPU ranks stopped after a failure (" + failed.message() +
                                         "); restart the engine");
  return failed;
}

Status CudaParallelRunner::build_models(int64_t blocks) {
  // Every rank's old model goes first (a rebuild after the memory plan), so a GPU never
  // holds a rank's old and new pool at once.
  const Status freed = on_ranks([&](int rank) -> Status {
    Rank& rk = ranks_[size_t(rank)];
    if (!rk.model) return Status::ok();
    LONGCTX_RETURN_IF_ERROR(cuda_ok(cudaStreamSynchronize(rk.stream), "finishing the rank's stream"));
    rk.model.reset();
    return Status::ok();
  });
  if (!freed.is_ok()) return freed;
  return on_ranks([&](int rank) -> Status {
    Rank& rk = ranks_[size_t(rank)];
    if (!rk.stream) {
      LONGCTX_RETURN_IF_ERROR(cuda_ok(cudaSetDevice(rk.device), "selecting GPU " + std::to_string(rk.device)));
      LONGCTX_RETURN_IF_ERROR(
          cuda_ok(cudaStreamCreateWithFlags(&rk.stream, cudaStreamNonBlocking), "creating the rank's stream"));
      rk.comms = device_staged_rank_communicators(*world_, layout_, rank, rk.stream);
    }
    cuda::CudaModelOptions o = rank_options(opts_.model);
    o.stream = rk.stream;
    o.num_kv_blocks = blocks;
    auto m = cuda::CudaDenseModel::create(cfg_, *weights_, o, cuda::CudaRankSpec{layout_, rank, &rk.comms});
    if (!m.is_ok()) return m.status();
    rk.model = std::move(*m);
    return Status::ok();
  });
}

Result<int64_t> CudaParallelRunner::plan_pool() {
  const cuda::CudaModelOptions& mo = opts_.model;
  const int64_t bs = mo.block_size;
  const int64_t max_len = mo.max_model_len > 0 ? mo.max_model_len : cfg_.max_position_embeddings;
  if (max_len < 1) return invalid_argument("--max-model-len must be given: the config has no max_position_embeddings");
  // The profiling step: max_num_batched_tokens tokens in sequences of at most max_model_len
  // (at most max_num_seqs of them), as the single-GPU model profiles its widest step.
  ForwardBatch prof;
  std::vector<int32_t> ids(static_cast<size_t>(std::min(mo.max_num_batched_tokens, max_len)), 0);
  int32_t next_block = 1;
  for (int64_t left = mo.max_num_batched_tokens, seqs = 0; left > 0 && seqs < mo.max_num_seqs; ++seqs) {
    const int64_t len = std::min(left, max_len);
    std::vector<int32_t> table;
    for (int64_t b = 0; b * bs < len; ++b) table.push_back(next_block++);
    prof.add_sequence(ids.data(), len, 0, table, bs, true);
    left -= len;
  }
  LONGCTX_RETURN_IF_ERROR(build_models(next_block));
  const Status profiled = on_ranks([&](int rank) -> Status {
    Rank& rk = ranks_[size_t(rank)];
    auto out = rk.model->forward(prof, /*use_graphs=*/false);
    if (!out.is_ok()) return Status(out.status().code(), "the profiling step: " + out.status().message());
    return cuda_ok(cudaStreamSynchronize(rk.stream), "the profiling step");
  });
  if (!profiled.is_ok()) return profiled;
  // What each GPU holds now (every rank's weights, activations, small pool and library
  // memory), read after every rank's profiling step.
  const int n = world_size();
  std::vector<size_t> free_b(static_cast<size_t>(n)), total_b(static_cast<size_t>(n));
  const Status read = on_ranks([&](int rank) -> Status {
    return cuda_ok(cudaMemGetInfo(&free_b[size_t(rank)], &total_b[size_t(rank)]), "reading the GPU's free memory");
  });
  if (!read.is_ok()) return read;
  std::vector<GpuRanksMemory> gpus(static_cast<size_t>(num_devices_));
  for (int r = 0; r < n; ++r) {
    GpuRanksMemory& g = gpus[size_t(device_of(r))];
    g.total_bytes = total_b[size_t(r)];
    g.used_bytes = std::max(g.used_bytes, total_b[size_t(r)] - free_b[size_t(r)]);
    g.bytes_per_block += ranks_[size_t(r)].model->memory_plan().bytes_per_block;
    ++g.ranks;
  }
  std::string why;
  LONGCTX_ASSIGN_OR_RETURN(int64_t pool, pool_over_gpus(gpus, mo.gpu_memory_utilization, (max_len + bs - 1) / bs + 1,
                                                        max_len, &why));
  pool_source_ = "memory plan, the tightest " + why;
  return pool;
}

Result<int64_t> CudaParallelRunner::pool_over_gpus(const std::vector<GpuRanksMemory>& gpus, double utilization,
                                                   int64_t min_blocks, int64_t max_model_len, std::string* tightest) {
  int64_t pool = INT64_MAX;
  std::string why = "no GPU";
  for (size_t d = 0; d < gpus.size(); ++d) {
    const GpuRanksMemory& g = gpus[d];
    if (g.ranks == 0) continue;
    const size_t budget = static_cast<size_t>(utilization * static_cast<double>(g.total_bytes));
    const size_t left = budget > g.used_bytes ? budget - g.used_bytes : 0;
    const int64_t blocks = g.bytes_per_block > 0 ? static_cast<int64_t>(left / g.bytes_per_block) : 0;
    if (blocks < pool) {
      pool = blocks;
      char util[32];
      std::snprintf(util, sizeof(util), "%.2f", utilization);
      why = "GPU " + std::to_string(d) + " (" + std::to_string(g.ranks) + " ranks): budget " + cuda::gib(budget) +
            " (--gpu-memory-utilization " + util + "), in use " + cuda::gib(g.used_bytes) + ", " +
            std::to_string(g.bytes_per_block) + " bytes per engine block over its ranks";
    }
  }
  if (pool == INT64_MAX) pool = 0;
  if (tightest) *tightest = why;
  if (pool < min_blocks)
    return invalid_argument("no room for the KV cache on the GPU ranks: " + why + " leaves " + std::to_string(pool) +
                            " blocks; one sequence of max_model_len " + std::to_string(max_model_len) + " needs " +
                            std::to_string(min_blocks) +
                            ". Raise --gpu-memory-utilization, lower --max-model-len or --max-num-batched-tokens, "
                            "or use fewer ranks per GPU");
  return pool;
}

std::string CudaParallelRunner::describe() const {
  return layout_.to_string() + ": " + std::to_string(world_size()) + " ranks on " + std::to_string(num_devices_) +
         " GPU(s), device-staged communicators; KV pool " + std::to_string(num_kv_blocks_) + " blocks of " +
         std::to_string(block_size()) + " tokens (" + pool_source_ + ")";
}

Result<StepLogits> CudaParallelRunner::run(const StepPlan& plan, const RequestLookup& request,
                                           const RequestPredicate& all_positions,
                                           const DeviceSamplingLookup& device_sample) {
  if (!stopped_.is_ok()) return stopped_;
  const cuda::CudaDenseModel& root = *ranks_[size_t(root_)].model;
  const bool can_sample = root.can_sample();
  // The batch every rank runs, as CudaModelRunner builds it (the engine's global block ids).
  // Greedy is the step's argmax; other draws need cuda::sample. Every last-stage rank draws
  // from the same bits with the same (seed, offset); the root's ids are used.
  CudaStepRows s = build_cuda_step_rows(plan, request, all_positions, device_sample, block_size(),
                                        [can_sample](const DeviceSampling& d) { return is_argmax(d) || can_sample; });
  const ForwardBatch& batch = s.batch;
  // Refused here, before any rank runs (every rank would refuse it alike, but a failure
  // inside the ranks stops the runner): the runner stays usable.
  const cuda::CudaModelOptions& o = root.options();
  if (batch.num_tokens() > o.max_num_batched_tokens || batch.num_seqs() > o.max_num_seqs ||
      static_cast<int64_t>(batch.logit_rows.size()) > o.max_logit_rows)
    return invalid_argument("the step has " + std::to_string(batch.num_tokens()) + " tokens, " +
                            std::to_string(batch.num_seqs()) + " sequences and " +
                            std::to_string(batch.logit_rows.size()) + " logit rows; the GPU ranks take at most " +
                            std::to_string(o.max_num_batched_tokens) + ", " + std::to_string(o.max_num_seqs) +
                            " and " + std::to_string(o.max_logit_rows));

  cuda::CudaDenseModel::RowsOut root_out;
  const Status ran = on_ranks([&](int rank) -> Status {
    if (step_hook_) LONGCTX_RETURN_IF_ERROR(step_hook_(rank));
    auto res = ranks_[size_t(rank)].model->forward_rows(batch, s.host_rows, s.needs_draw ? &s.sampling : nullptr,
                                                        /*use_graphs=*/false);
    if (!res.is_ok()) return res.status();
    if (rank == root_) root_out = std::move(*res);
    return Status::ok();
  });
  if (!ran.is_ok()) return ran;
  device_rows_ += take_device_rows(s, root_out);
  host_rows_ += static_cast<int64_t>(s.host_rows.size());
  s.out.logits = std::move(root_out.logits);
  return std::move(s.out);
}

}  // namespace longctx
