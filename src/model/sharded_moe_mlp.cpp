#include "model/sharded_moe_mlp.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/moe_mlp.h"
#include "model/weight_linear.h"

namespace longctx {
namespace {

// Rows [c0, c0 + ic) of gate and of up (gate_up is [gate; up], 2·mi rows) and columns
// [c0, c0 + ic) of down: one TP part of an expert.
ExpertWeights expert_part(const ExpertWeights& e, int64_t parts, int64_t part) {
  const int64_t mi = e.down.size(1), ic = mi / parts, c0 = part * ic;
  ExpertWeights p;
  p.gate_up = Tensor::empty({2 * ic, e.gate_up.size(1)}, e.gate_up.dtype());
  p.gate_up.slice(0, 0, ic).copy_from(e.gate_up.slice(0, c0, c0 + ic));
  p.gate_up.slice(0, ic, 2 * ic).copy_from(e.gate_up.slice(0, mi + c0, mi + c0 + ic));
  p.down = e.down.slice(1, c0, c0 + ic).contiguous();
  return p;
}

bool has(const Tensor& t) { return t.numel() > 0 && t.raw() != nullptr; }

// Counts and expert ids travel in the fp32 buffers as int32 bit patterns (exact).
float bits(int32_t v) {
  float f;
  std::memcpy(&f, &v, sizeof f);
  return f;
}
int32_t unbits(float f) {
  int32_t v;
  std::memcpy(&v, &f, sizeof v);
  return v;
}

// One routed (token, expert) pair this rank sent, and where its output came back.
struct Dispatched {
  int64_t token;  // local row
  int64_t expert;
  float weight;
  const float* out = nullptr;
};

}  // namespace

Status shard_moe_layer(const ModelConfig& /*cfg*/, const DenseLayerWeights& full,
                       const ParallelLayout& layout, int rank, int ffn_size, int ffn_index,
                       DenseLayerWeights& out) {
  out.router = full.router;
  out.router_bias = full.router_bias;
  const int ep = layout.config().ep;
  const int64_t num_experts = static_cast<int64_t>(full.experts.size());
  if (ep > 1) {
    if (num_experts % ep != 0)
      return invalid_argument("--ep " + std::to_string(ep) + " must divide the model's " +
                              std::to_string(num_experts) + " routed experts");
    const int64_t n = num_experts / ep, first = layout.ep_index(rank) * n;
    out.experts.assign(full.experts.begin() + first, full.experts.begin() + first + n);
    out.shared_expert = full.shared_expert;  // replicated: run by the owner of each token slice
    return Status::ok();
  }
  const int64_t mi = full.experts.front().down.size(1);
  if (mi % ffn_size != 0)
    return invalid_argument("the FFN's tensor parallelism (" + std::to_string(ffn_size) +
                            " ranks: --tp, or kvp·tp under --helix) must divide the expert MLP width " +
                            std::to_string(mi) + " (moe_intermediate_size); or use --ep");
  out.experts.clear();
  for (const ExpertWeights& e : full.experts) out.experts.push_back(expert_part(e, ffn_size, ffn_index));
  if (has(full.shared_expert.gate_up)) {
    const int64_t smi = full.shared_expert.down.size(1);
    if (smi % ffn_size != 0)
      return invalid_argument("the FFN's tensor parallelism (" + std::to_string(ffn_size) +
                              " ranks) must divide the shared experts' MLP width " + std::to_string(smi));
    out.shared_expert = expert_part(full.shared_expert, ffn_size, ffn_index);
  }
  return Status::ok();
}

void sharded_moe_mlp_forward(const ModelConfig& cfg, const DenseLayerWeights& lw, const float* normed,
                             int64_t t, Communicator& ffn_group, Communicator* replicas,
                             Communicator* ep_group, float* out) {
  const int64_t hidden = cfg.hidden_size, num_experts = cfg.num_experts, k = cfg.num_experts_per_tok;
  std::fill(out, out + t * hidden, 0.0f);
  if (!ep_group || ep_group->size() == 1) {
    // TP: each expert's slice of the intermediate dim; the partial sums add up in the all-reduce.
    if (t > 0) moe_mlp_forward(cfg, lw, normed, t, out);
    return;
  }

  Communicator& ep = *ep_group;
  const int peers = ep.size(), me = ep.rank();
  // Experts per EP rank from the config (the layout's dims need not name the experts).
  const int64_t per_rank = num_experts / peers, first_local = me * per_rank;
  // This rank's slice of the tokens that its FFN group and their replicas share.
  const int64_t parts = int64_t{ffn_group.size()} * (replicas ? replicas->size() : 1);
  const int64_t s = (replicas ? replicas->rank() : 0) * int64_t{ffn_group.size()} + ffn_group.rank();
  const int64_t i0 = t * s / parts, i1 = t * (s + 1) / parts, m = i1 - i0;

  std::vector<float> logits(static_cast<size_t>(m * num_experts));
  if (m > 0) weight_linear(normed + i0 * hidden, m, lw.router, logits.data());
  std::vector<std::vector<Dispatched>> to(static_cast<size_t>(peers));
  std::vector<int64_t> chosen;
  std::vector<double> weights;
  for (int64_t i = 0; i < m; ++i) {
    route_token(cfg, lw, logits.data() + i * num_experts, chosen, weights);
    for (int64_t j = 0; j < k; ++j) {
      const int64_t e = chosen[size_t(j)];
      to[size_t(e / per_rank)].push_back({i0 + i, e, static_cast<float>(weights[size_t(j)])});
    }
  }

  // Counts first: every member learns the whole [src][dst] matrix, so all agree on the
  // padded row count of the all-to-all (a GPU build would use all_to_all_v instead).
  std::vector<float> my_counts(static_cast<size_t>(peers));
  for (int p = 0; p < peers; ++p) my_counts[size_t(p)] = bits(static_cast<int32_t>(to[size_t(p)].size()));
  std::vector<float> counts(static_cast<size_t>(peers * peers));
  ep.all_gather(my_counts.data(), peers, counts.data());
  const auto count = [&](int src, int dst) { return int64_t{unbits(counts[size_t(src * peers + dst)])}; };
  int64_t most = 0;
  for (int i = 0; i < peers * peers; ++i) most = std::max<int64_t>(most, unbits(counts[size_t(i)]));

  // Rows: the token's normed hidden state, then its expert id.
  const int64_t row = hidden + 1, chunk = most * row;
  std::vector<float> send(static_cast<size_t>(peers * chunk), 0.0f), recv(send.size());
  for (int p = 0; p < peers; ++p)
    for (size_t r = 0; r < to[size_t(p)].size(); ++r) {
      const Dispatched& d = to[size_t(p)][r];
      float* dst = send.data() + p * chunk + static_cast<int64_t>(r) * row;
      std::memcpy(dst, normed + d.token * hidden, static_cast<size_t>(hidden) * sizeof(float));
      dst[hidden] = bits(static_cast<int32_t>(d.expert));
    }
  if (most > 0) ep.all_to_all(send.data(), chunk, recv.data());

  // Group what arrived by local expert (in source-rank, then row order) and run each
  // expert once over its rows; outputs go back in the rows they came in.
  std::vector<std::vector<std::pair<int, int64_t>>> rows_of(static_cast<size_t>(per_rank));
  for (int src = 0; src < peers; ++src)
    for (int64_t r = 0; r < count(src, me); ++r) {
      const int64_t le = unbits(recv[size_t(src * chunk + r * row + hidden)]) - first_local;
      if (le < 0 || le >= per_rank)
        throw std::logic_error("expert dispatch: a row for expert " + std::to_string(le + first_local) +
                               " reached EP rank " + std::to_string(me));
      rows_of[size_t(le)].emplace_back(src, r);
    }
  const int64_t back_chunk = most * hidden;
  std::vector<float> back(static_cast<size_t>(peers * back_chunk), 0.0f), ret(back.size());
  std::vector<float> x, gate_up, act, y;
  for (int64_t le = 0; le < per_rank; ++le) {
    const auto& rows = rows_of[size_t(le)];
    const int64_t n = static_cast<int64_t>(rows.size());
    if (n == 0) continue;
    x.resize(static_cast<size_t>(n * hidden));
    for (int64_t r = 0; r < n; ++r)
      std::memcpy(x.data() + r * hidden,
                  recv.data() + rows[size_t(r)].first * chunk + rows[size_t(r)].second * row,
                  static_cast<size_t>(hidden) * sizeof(float));
    expert_mlp(lw.experts[size_t(le)], x.data(), n, gate_up, act, y);
    for (int64_t r = 0; r < n; ++r)
      std::memcpy(back.data() + rows[size_t(r)].first * back_chunk + rows[size_t(r)].second * hidden,
                  y.data() + r * hidden, static_cast<size_t>(hidden) * sizeof(float));
  }
  if (most > 0) ep.all_to_all(back.data(), back_chunk, ret.data());

  // Combine: per token, its k outputs weighted and summed in ascending expert order (as
  // the single-rank MLP adds them), whichever rank computed them.
  std::vector<std::vector<const Dispatched*>> of_token(static_cast<size_t>(m));
  for (int p = 0; p < peers; ++p)
    for (size_t r = 0; r < to[size_t(p)].size(); ++r) {
      Dispatched& d = to[size_t(p)][r];
      d.out = ret.data() + p * back_chunk + static_cast<int64_t>(r) * hidden;
      of_token[size_t(d.token - i0)].push_back(&d);
    }
  for (int64_t i = 0; i < m; ++i) {
    auto& list = of_token[size_t(i)];
    std::sort(list.begin(), list.end(),
              [](const Dispatched* a, const Dispatched* b) { return a->expert < b->expert; });
    float* dst = out + (i0 + i) * hidden;
    for (const Dispatched* d : list)
      for (int64_t c = 0; c < hidden; ++c) dst[c] += d->weight * d->out[c];
  }
  if (m > 0 && has(lw.shared_expert.gate_up)) {
    expert_mlp(lw.shared_expert, normed + i0 * hidden, m, gate_up, act, y);
    for (int64_t i = 0; i < m * hidden; ++i) out[i0 * hidden + i] += y[size_t(i)];
  }
  // Rows of the replicas' slices come in by adding exact zeros elsewhere.
  if (replicas && replicas->size() > 1) replicas->all_reduce_sum(out, t * hidden);
}

}  // namespace longctx
