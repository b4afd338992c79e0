// ModelExecutor: what the engine calls to run a StepPlan on some device — the CPU
// single-rank ModelRunner, or the GPU's CudaModelRunner (exec/cuda_model_runner.h, built
// only with CUDA). The engine owns the KV manager (kv/) and hands the executor block ids;
// the executor's cache must hold exactly num_kv_blocks() blocks of block_size() tokens,
// block 0 the null block, so the engine's pool is sized from it.
// Does, never decides (STYLE.md §3): which chunk samples where is the engine's call
// (device_sample), which rows come back the plan's.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "sched/request.h"
#include "sched/step_plan.h"

namespace longctx {

struct ChunkRows {
  int64_t first_row = -1;  // into StepLogits::logits; -1 when the chunk returns none
  int64_t num_rows = 0;    // all chunk positions (prompt logprobs) or the last one (sampling)
  bool all_positions = false;
  // Sampled by the executor itself (only the id, and its logprob when asked, came back);
  // then first_row is -1 and no logits row exists.
  bool sampled_on_device = false;
  int32_t token = -1;
  float logprob = 0;  // of `token`, when DeviceSampling::logprob asked for it
};

struct StepLogits {
  Tensor logits;                // f32 [rows, vocab]
  std::vector<ChunkRows> rows;  // one per plan chunk, same order
};

// A request whose next token the executor may sample itself: the sampling steps that need
// no history (temperature → top-k → top-p → min-p; temperature 0 is greedy). Requests with
// penalties, banned tokens or top-N logprobs are never offered (their logits come back).
// The random stream is counter-based, (seed, offset = the output position), so a seeded
// request draws the same tokens whatever its batch and position in it.
struct DeviceSampling {
  float temperature = 0;
  int32_t top_k = -1;
  float top_p = 1;
  float min_p = 0;
  uint64_t seed = 0;
  uint64_t offset = 0;
  bool logprob = false;  // the sampled id's logprob (log-softmax of the raw row)
};

using RequestLookup = std::function<const Request&(RequestId)>;
using RequestPredicate = std::function<bool(RequestId)>;
using DeviceSamplingLookup = std::function<std::optional<DeviceSampling>(RequestId)>;

class ModelExecutor {
 public:
  virtual ~ModelExecutor() = default;

  // request(id) gives the request's known tokens; all_positions(id) asks for the logits of
  // every position of its chunk (prompt logprobs) instead of just the last; device_sample(id)
  // offers the chunk's sampling to the executor (it may decline and return the row).
  virtual Result<StepLogits> run(const StepPlan& plan, const RequestLookup& request,
                                 const RequestPredicate& all_positions,
                                 const DeviceSamplingLookup& device_sample) = 0;
  // The KV pool the executor's cache holds, the null block included.
  virtual int64_t num_kv_blocks() const = 0;
  virtual int64_t block_size() const = 0;
};

}  // namespace longctx
