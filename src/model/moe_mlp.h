// The routed MLP of Mixtral, Qwen3-MoE and DeepSeek-V3 on the CPU: router scores
// (softmax, or DeepSeek's biased sigmoid with group-limited choice), top-k per token (weights renormalised over the k when the config says so — always
// for Mixtral), tokens grouped per expert so each expert runs one GEMM over its tokens,
// and the weighted outputs added into the residual stream.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/dense_weights.h"

namespace longctx {

// One token's top-k experts (best first) and their weights from its router logits
// [num_experts] (also used by the expert-parallel MLP, whose ranks route alike).
void route_token(const ModelConfig& cfg, const DenseLayerWeights& lw, const float* logits,
                 std::vector<int64_t>& chosen, std::vector<double>& weights);

// out[m, hidden] = down(silu(gate) · up) of x[m, hidden] for one expert (scratch reused).
void expert_mlp(const ExpertWeights& ew, const float* x, int64_t m, std::vector<float>& gate_up,
                std::vector<float>& act, std::vector<float>& out);

// residual[t] += Σ_k w_tk · expert_{e_tk}(normed[t]) for the t tokens of `normed`.
void moe_mlp_forward(const ModelConfig& cfg, const DenseLayerWeights& lw, const float* normed, int64_t t,
                     float* residual);

}  // namespace longctx
