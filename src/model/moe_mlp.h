// The routed MLP of Mixtral, Qwen3-MoE and DeepSeek-V3 on the CPU: router scores
// (softmax, or DeepSeek's biased sigmoid with group-limited choice), top-k per token (weights renormalised over the k when the config says so — always
// for Mixtral), tokens grouped per expert so each expert runs one GEMM over its tokens,
// and the weighted outputs added into the residual stream.
#pragma once

#include <cstdint>

#include "model/config.h"
#include "model/dense_weights.h"

namespace longctx {

// residual[t] += Σ_k w_tk · expert_{e_tk}(normed[t]) for the t tokens of `normed`.
void moe_mlp_forward(const ModelConfig& cfg, const DenseLayerWeights& lw, const float* normed, int64_t t,
                     float* residual);

}  // namespace longctx
