#include "model/moe_mlp.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "ops/cpu/activation.h"
#include "model/weight_linear.h"
#include "ops/cpu/linear.h"

namespace longctx {
namespace {

// Indices of the top k of `score` among `allowed` (ties to the lower index), best first.
std::vector<int64_t> top_k(const std::vector<double>& score, int64_t k) {
  std::vector<int64_t> order(score.size());
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
    const double sa = score[static_cast<size_t>(a)], sb = score[static_cast<size_t>(b)];
    return sa != sb ? sa > sb : a < b;
  });
  order.resize(static_cast<size_t>(k));
  return order;
}

}  // namespace

// One token's experts and their weights.
//  - softmax routing (Mixtral, Qwen3-MoE): softmax over experts, top k, renormalised
//    over the k when norm_topk_prob (always for Mixtral);
//  - DeepSeek-V3: sigmoid scores; choice by score + e_score_correction_bias, limited to
//    the topk_group groups whose two best biased scores sum highest (other experts'
//    choice scores set to 0, as transformers does); weights are the unbiased sigmoid
//    scores of the chosen, renormalised when norm_topk_prob, times routed_scaling_factor.
void route_token(const ModelConfig& cfg, const DenseLayerWeights& lw, const float* logits,
                 std::vector<int64_t>& chosen, std::vector<double>& weights) {
  const int64_t e_count = cfg.num_experts, k = cfg.num_experts_per_tok;
  std::vector<double> prob(static_cast<size_t>(e_count));
  if (cfg.scoring_func == "sigmoid") {
    for (int64_t e = 0; e < e_count; ++e) prob[static_cast<size_t>(e)] = 1.0 / (1.0 + std::exp(-double(logits[e])));
  } else {
    const double mx = *std::max_element(logits, logits + e_count);
    double z = 0;
    for (int64_t e = 0; e < e_count; ++e) z += prob[static_cast<size_t>(e)] = std::exp(logits[e] - mx);
    for (double& p : prob) p /= z;
  }
  std::vector<double> choice = prob;
  if (lw.router_bias.numel() > 0 && lw.router_bias.raw())
    for (int64_t e = 0; e < e_count; ++e) choice[static_cast<size_t>(e)] += lw.router_bias.data<float>()[e];
  if (cfg.n_group > 1) {
    const int64_t per = e_count / cfg.n_group;
    std::vector<double> group_score(static_cast<size_t>(cfg.n_group));
    for (int64_t g = 0; g < cfg.n_group; ++g) {
      std::vector<double> members(choice.begin() + g * per, choice.begin() + (g + 1) * per);
      double s = 0;
      for (int64_t j : top_k(members, std::min<int64_t>(2, per))) s += members[static_cast<size_t>(j)];
      group_score[static_cast<size_t>(g)] = s;
    }
    std::vector<bool> keep(static_cast<size_t>(cfg.n_group), false);
    for (int64_t g : top_k(group_score, cfg.topk_group)) keep[static_cast<size_t>(g)] = true;
    for (int64_t e = 0; e < e_count; ++e)
      if (!keep[static_cast<size_t>(e / per)]) choice[static_cast<size_t>(e)] = 0.0;
  }
  chosen = top_k(choice, k);
  weights.assign(static_cast<size_t>(k), 0.0);
  double sum = 0;
  for (int64_t j = 0; j < k; ++j) sum += weights[static_cast<size_t>(j)] = prob[static_cast<size_t>(chosen[static_cast<size_t>(j)])];
  const bool normalise = cfg.norm_topk_prob || cfg.arch == Architecture::kMixtral;
  const double denom = cfg.scoring_func == "sigmoid" ? sum + 1e-20 : sum;
  for (double& w : weights) {
    if (normalise) w /= denom;
    if (cfg.arch == Architecture::kDeepseekV3) w *= cfg.routed_scaling_factor;
  }
}

// residual[rows] += gate_up/down MLP of x for one expert over its m gathered rows.
void expert_mlp(const ExpertWeights& ew, const float* x, int64_t m, std::vector<float>& gate_up,
                std::vector<float>& act, std::vector<float>& out) {
  const int64_t mi = ew.down.size(1);
  gate_up.resize(static_cast<size_t>(m * 2 * mi));
  weight_linear(x, m, ew.gate_up, gate_up.data());
  act.resize(static_cast<size_t>(m * mi));
  cpu::silu_mul(gate_up.data(), gate_up.data() + mi, act.data(), m, mi, 2 * mi);
  out.resize(static_cast<size_t>(m * ew.down.size(0)));
  weight_linear(act.data(), m, ew.down, out.data());
}

void moe_mlp_forward(const ModelConfig& cfg, const DenseLayerWeights& lw, const float* normed, int64_t t,
                     float* residual) {
  const int64_t hidden = cfg.hidden_size, num_experts = cfg.num_experts, k = cfg.num_experts_per_tok;

  std::vector<float> logits(static_cast<size_t>(t * num_experts));
  weight_linear(normed, t, lw.router, logits.data());
  std::vector<std::vector<std::pair<int64_t, float>>> routed(static_cast<size_t>(num_experts));  // (token, weight)
  std::vector<double> weights;
  std::vector<int64_t> chosen;
  for (int64_t i = 0; i < t; ++i) {
    route_token(cfg, lw, logits.data() + i * num_experts, chosen, weights);
    for (int64_t j = 0; j < k; ++j)
      routed[static_cast<size_t>(chosen[static_cast<size_t>(j)])].emplace_back(i, static_cast<float>(weights[static_cast<size_t>(j)]));
  }

  // Each expert: gather its tokens, one GEMM pair over them, scatter-add weighted.
  std::vector<float> x, gate_up, act, out;
  for (int64_t e = 0; e < num_experts; ++e) {
    const auto& tokens = routed[static_cast<size_t>(e)];
    const int64_t m = static_cast<int64_t>(tokens.size());
    if (m == 0) continue;
    x.resize(static_cast<size_t>(m * hidden));
    for (int64_t r = 0; r < m; ++r)
      std::memcpy(x.data() + r * hidden, normed + tokens[static_cast<size_t>(r)].first * hidden,
                  static_cast<size_t>(hidden) * sizeof(float));
    expert_mlp(lw.experts[static_cast<size_t>(e)], x.data(), m, gate_up, act, out);
    for (int64_t r = 0; r < m; ++r) {
      float* dst = residual + tokens[static_cast<size_t>(r)].first * hidden;
      const float w = tokens[static_cast<size_t>(r)].second;
      for (int64_t c = 0; c < hidden; ++c) dst[c] += w * out[static_cast<size_t>(r * hidden + c)];
    }
  }
  // DeepSeek-V3's shared experts see every token, unweighted.
  if (lw.shared_expert.gate_up.numel() > 0 && lw.shared_expert.gate_up.raw()) {
    expert_mlp(lw.shared_expert, normed, t, gate_up, act, out);
    for (int64_t i = 0; i < t * hidden; ++i) residual[i] += out[static_cast<size_t>(i)];
  }
}

}  // namespace longctx
