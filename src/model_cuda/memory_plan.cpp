#include "model_cuda/memory_plan.h"

#include <cstdio>

namespace longctx::cuda {

std::string gib(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

std::string MemoryPlan::to_string() const {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.2f", utilization);
  return "device " + gib(total_bytes) + ", budget " + gib(budget_bytes) + " (--gpu-memory-utilization " +
         buf + "): other " + gib(other_bytes) + ", weights " + gib(weight_bytes) + ", activations " +
         gib(activation_bytes) + ", KV cache " + gib(kv_bytes) + " = " + std::to_string(num_blocks) +
         " blocks of " + std::to_string(bytes_per_block) + " bytes";
}

Status check_weights_fit(size_t total_bytes, size_t used_bytes, double utilization, size_t weight_bytes) {
  if (!(utilization > 0.0 && utilization <= 1.0))
    return invalid_argument("--gpu-memory-utilization must be in (0, 1], got " + std::to_string(utilization));
  const size_t budget = static_cast<size_t>(utilization * static_cast<double>(total_bytes));
  if (used_bytes + weight_bytes > budget)
    return invalid_argument("the model does not fit: its weights need " + gib(weight_bytes) + ", " +
                            gib(used_bytes) + " of the device are already in use, and the budget is " +
                            gib(budget) + " (--gpu-memory-utilization " + std::to_string(utilization) +
                            " × " + gib(total_bytes) +
                            "); use a larger --gpu-memory-utilization, a smaller model, or more GPUs");
  return Status::ok();
}

Result<MemoryPlan> plan_kv_pool(size_t total_bytes, double utilization, size_t used_at_start,
                                size_t weight_bytes, size_t used_after_profile, size_t bytes_per_block,
                                int64_t min_blocks, int64_t max_model_len) {
  LONGCTX_RETURN_IF_ERROR(check_weights_fit(total_bytes, used_at_start, utilization, weight_bytes));
  MemoryPlan p;
  p.total_bytes = total_bytes;
  p.utilization = utilization;
  p.budget_bytes = static_cast<size_t>(utilization * static_cast<double>(total_bytes));
  p.other_bytes = used_at_start;
  p.weight_bytes = weight_bytes;
  const size_t before_act = used_at_start + weight_bytes;
  p.activation_bytes = used_after_profile > before_act ? used_after_profile - before_act : 0;
  p.bytes_per_block = bytes_per_block;
  const size_t used = before_act + p.activation_bytes;
  p.kv_bytes = p.budget_bytes > used ? p.budget_bytes - used : 0;
  p.num_blocks = bytes_per_block > 0 ? static_cast<int64_t>(p.kv_bytes / bytes_per_block) : 0;
  p.kv_bytes = static_cast<size_t>(p.num_blocks) * bytes_per_block;
  if (p.num_blocks < min_blocks)
    return invalid_argument(
        "no room for the KV cache: " + p.to_string() + "; one sequence of max_model_len " +
        std::to_string(max_model_len) + " needs " + std::to_string(min_blocks) + " blocks (" +
        gib(static_cast<size_t>(min_blocks) * bytes_per_block) +
        "). Raise --gpu-memory-utilization, lower --max-model-len or --max-num-batched-tokens");
  return p;
}

}  // namespace longctx::cuda
