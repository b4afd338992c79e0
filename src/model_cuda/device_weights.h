// The dense Llama-family weights on the GPU: matrices bf16 (q|k|v and gate|up fused, as
// on the CPU), norms fp32 (the CPU backend's precision), biases in their GEMM's output
// dtype (cuBLASLt's bias epilogue: bf16 for q|k|v and gate|up, fp32 for the projections
// that accumulate into the fp32 residual). All in one device allocation.
//
// A rank of a ParallelLayout (TP, PP) holds its share only (RankShape): its q heads and
// kv heads (replicated when tp > Hkv), those heads' o_proj input columns, its gate/up
// rows and down columns, its stage's layers, the embedding on the first stage and the
// final norm and LM head on the last — vocabulary rows vocab / tp when tp divides the
// vocabulary, else all of them: the slicing of ShardedDenseModel::shard, on upload.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "model/config.h"
#include "model/dense_weights.h"
#include "model_cuda/device_buffer.h"
#include "parallel/parallel_layout.h"

namespace longctx::cuda {

// A routed MLP layer (Mixtral, Qwen3-MoE): the router fp32 (as the CPU backend: the
// routing is decided in fp32, so near-ties fall as they do there), the experts' matrices
// bf16, stacked expert by expert (grouped_gemm.h's layout). Null on dense layers.
struct DeviceMoeWeights {
  float* router = nullptr;           // [num_experts, hidden]
  __nv_bfloat16* gate_up = nullptr;  // [num_experts, 2·moe_inter, hidden]
  __nv_bfloat16* down = nullptr;     // [num_experts, hidden, moe_inter]
};

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
  DeviceMoeWeights moe;                   // routed layers: gate_up/down above are null
};

struct DeviceWeights {
  DeviceBuffer arena;
  __nv_bfloat16* embed_tokens = nullptr;  // [vocab, hidden]; null off the first stage
  __nv_bfloat16* lm_head =
      nullptr;                  // [vocab rows, hidden]; = embed_tokens when tied; null off the last stage
  float* final_norm = nullptr;  // [hidden]; null off the last stage
  std::vector<DeviceLayerWeights> layers;  // the stage's layers
};

// What one rank holds (the whole model: full_rank_shape). Head, width and layer counts
// are this rank's; the matrices above have these sizes in place of the config's.
struct RankShape {
  int64_t num_q_heads = 0, num_kv_heads = 0, intermediate = 0;
  int64_t first_q_head = 0, first_kv_head = 0, first_column = 0;  // into the full model's
  int64_t first_layer = 0, num_layers = 0;
  int64_t vocab_rows = 0, first_vocab_row = 0;  // of the LM head
  bool embed = true, head = true;               // first / last pipeline stage
};
RankShape full_rank_shape(const ModelConfig& cfg);
// `rank`'s share under `layout` (TP and PP; the caller has checked the layout).
RankShape rank_shape(const ModelConfig& cfg, const ParallelLayout& layout, int rank);

// Bytes the weights of this config take on the device (the arena's size).
size_t device_weight_bytes(const ModelConfig& cfg);

// Unsupported configs (MLA; MoE with non-softmax routing or shared experts) are an
// InvalidArgument naming the architecture.
Status check_supported(const ModelConfig& cfg);

// Copies host weights (any float dtype; converted to bf16 / fp32 on the way).
Result<DeviceWeights> upload_dense_weights(const ModelConfig& cfg, const DenseWeights& w);
// Copies a rank's share of the full host weights (`shape` from rank_shape).
Result<DeviceWeights> upload_dense_weights(const ModelConfig& cfg, const DenseWeights& w,
                                           const RankShape& shape);
// Bytes of a rank's share.
size_t device_weight_bytes(const ModelConfig& cfg, const RankShape& shape);

// Random weights made on the device (benchmarks): matrices uniform with standard deviation
// `init_std`, norms 1, biases 0.
Result<DeviceWeights> random_dense_weights(const ModelConfig& cfg, uint64_t seed, float init_std);

}  // namespace longctx::cuda
