#include "model/moe_mlp.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "ops/cpu/activation.h"
#include "ops/cpu/linear.h"

namespace longctx {
namespace {

void linear_into(const float* x, int64_t m, const Tensor& w, float* y) {
  cpu::LinearParams p;
  p.x = x;
  p.w = w.raw();
  p.w_dtype = w.dtype();
  p.y = y;
  p.m = m;
  p.n = w.size(0);
  p.k = w.size(1);
  cpu::linear(p);
}

}  // namespace

void moe_mlp_forward(const ModelConfig& cfg, const DenseLayerWeights& lw, const float* normed, int64_t t,
                     float* residual) {
  const int64_t hidden = cfg.hidden_size, num_experts = cfg.num_experts, k = cfg.num_experts_per_tok;
  const int64_t mi = cfg.moe_intermediate_size;

  // Router: softmax over experts in double, then the top k (ties to the lower index).
  std::vector<float> logits(static_cast<size_t>(t * num_experts));
  linear_into(normed, t, lw.router, logits.data());
  std::vector<std::vector<std::pair<int64_t, float>>> routed(static_cast<size_t>(num_experts));  // (token, weight)
  std::vector<int64_t> order(static_cast<size_t>(num_experts));
  for (int64_t i = 0; i < t; ++i) {
    const float* row = logits.data() + i * num_experts;
    const double mx = *std::max_element(row, row + num_experts);
    std::vector<double> prob(static_cast<size_t>(num_experts));
    double z = 0;
    for (int64_t e = 0; e < num_experts; ++e) z += prob[static_cast<size_t>(e)] = std::exp(row[e] - mx);
    for (double& p : prob) p /= z;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
      return prob[static_cast<size_t>(a)] != prob[static_cast<size_t>(b)] ? prob[static_cast<size_t>(a)] > prob[static_cast<size_t>(b)] : a < b;
    });
    double kept = 0;
    for (int64_t j = 0; j < k; ++j) kept += prob[static_cast<size_t>(order[static_cast<size_t>(j)])];
    for (int64_t j = 0; j < k; ++j) {
      const int64_t e = order[static_cast<size_t>(j)];
      const double w = cfg.norm_topk_prob ? prob[static_cast<size_t>(e)] / kept : prob[static_cast<size_t>(e)];
      routed[static_cast<size_t>(e)].emplace_back(i, static_cast<float>(w));
    }
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
    const ExpertWeights& ew = lw.experts[static_cast<size_t>(e)];
    gate_up.resize(static_cast<size_t>(m * 2 * mi));
    linear_into(x.data(), m, ew.gate_up, gate_up.data());
    act.resize(static_cast<size_t>(m * mi));
    cpu::silu_mul(gate_up.data(), gate_up.data() + mi, act.data(), m, mi, 2 * mi);
    out.resize(static_cast<size_t>(m * hidden));
    linear_into(act.data(), m, ew.down, out.data());
    for (int64_t r = 0; r < m; ++r) {
      float* dst = residual + tokens[static_cast<size_t>(r)].first * hidden;
      const float w = tokens[static_cast<size_t>(r)].second;
      for (int64_t c = 0; c < hidden; ++c) dst[c] += w * out[static_cast<size_t>(r * hidden + c)];
    }
  }
}

}  // namespace longctx
