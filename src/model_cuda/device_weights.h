// The dense Llama-family weights on the GPU: matrices bf16 (q|k|v and gate|up fused, as
// on the CPU), norms fp32 (the CPU backend's precision), biases in their GEMM's output
// dtype (cuBLASLt's bias epilogue: bf16 for q|k|v and gate|up, fp32 for the projections
// that accumulate into the fp32 residual). All in one device allocation.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "model/config.h"
#include "model/dense_weights.h"
#include "model_cuda/device_buffer.h"

namespace longctx::cuda {

struct DeviceLayerWeights {
  float* input_norm = nullptr;        // [hidden]
  __nv_bfloat16* qkv = nullptr;       // [(Hq + 2·Hkv)·D, hidden]
  __nv_bfloat16* qkv_bias = nullptr;  // [(Hq + 2·Hkv)·D] or null
  float* q_norm = nullptr;            // [D] (qwen3) or null
  float* k_norm = nullptr;
  __nv_bfloat16* o_proj = nullptr;        // [hidden, Hq·D]
  float* o_bias = nullptr;                // [hidden] or null
  float* post_attention_norm = nullptr;   // [hidden]
  __nv_bfloat16* gate_up = nullptr;       // [2·inter, hidden]
  __nv_bfloat16* gate_up_bias = nullptr;  // [2·inter] or null
  __nv_bfloat16* down = nullptr;          // [hidden, inter]
  float* down_bias = nullptr;             // [hidden] or null
};

struct DeviceWeights {
  DeviceBuffer arena;
  __nv_bfloat16* embed_tokens = nullptr;  // [vocab, hidden]
  __nv_bfloat16* lm_head = nullptr;       // [vocab, hidden]; = embed_tokens when tied
  float* final_norm = nullptr;            // [hidden]
  std::vector<DeviceLayerWeights> layers;
};

// Bytes the weights of this config take on the device (the arena's size).
size_t device_weight_bytes(const ModelConfig& cfg);

// Unsupported configs (MoE, MLA) are an InvalidArgument naming the architecture.
Status check_supported(const ModelConfig& cfg);

// Copies host weights (any float dtype; converted to bf16 / fp32 on the way).
Result<DeviceWeights> upload_dense_weights(const ModelConfig& cfg, const DenseWeights& w);

// Random weights made on the device (benchmarks): matrices uniform with standard deviation
// `init_std`, norms 1, biases 0.
Result<DeviceWeights> random_dense_weights(const ModelConfig& cfg, uint64_t seed, float init_std);

}  // namespace longctx::cuda
