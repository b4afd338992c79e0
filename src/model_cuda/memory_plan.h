// How the GPU's memory is divided (vLLM's --gpu-memory-utilization): of the budget
// utilization × total, first the weights, then the activations' peak measured by a
// profiling pass at max_num_batched_tokens, and what is left becomes the KV block pool.
// Pure arithmetic over measured numbers, so the rules are testable without a GPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace longctx::cuda {

struct MemoryPlan {
  size_t total_bytes = 0;   // the device's memory
  double utilization = 0;   // --gpu-memory-utilization
  size_t budget_bytes = 0;  // utilization × total
  size_t other_bytes = 0;   // in use before we loaded anything (CUDA context, other processes)
  size_t weight_bytes = 0;
  size_t activation_bytes = 0;  // profiled peak beyond the weights (workspaces, library memory)
  size_t kv_bytes = 0;          // the block pool
  size_t bytes_per_block = 0;
  int64_t num_blocks = 0;
  std::string to_string() const;  // one line, GiB
};

// Before loading: the weights must fit in the budget next to what is already in use.
// `used_bytes` = total − free at start. The error names every number and the flag.
Status check_weights_fit(size_t total_bytes, size_t used_bytes, double utilization, size_t weight_bytes);

// After the profiling pass: `used_after_profile` = total − free with the weights and the
// activation workspaces allocated (the peak: every activation buffer is allocated up front).
// `min_blocks`: the blocks one sequence of max_model_len needs (plus the null block); fewer
// is an error that names the numbers and what to change.
Result<MemoryPlan> plan_kv_pool(size_t total_bytes, double utilization, size_t used_at_start,
                                size_t weight_bytes, size_t used_after_profile, size_t bytes_per_block,
                                int64_t min_blocks, int64_t max_model_len);

// "12.34 GiB"
std::string gib(size_t bytes);

}  // namespace longctx::cuda
