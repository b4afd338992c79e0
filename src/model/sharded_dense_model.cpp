#include "model/sharded_dense_model.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "model/helix_attention.h"
#include "model/partial_attention_exchange.h"
#include "model/sharded_mla_attention.h"
#include "model/sharded_moe_mlp.h"
#include "model/weight_linear.h"
#include "ops/cpu/activation.h"
#include "ops/cpu/attention.h"
#include "ops/cpu/embedding.h"
#include "ops/cpu/linear.h"
#include "ops/cpu/norm.h"
#include "ops/cpu/paged_attention.h"
#include "ops/cpu/rope.h"

namespace longctx {
namespace {

// residual[r, :] += delta[r, :] (+ bias): the sum of the ranks' partial projections.
void add_rows(float* residual, const float* delta, const Tensor& bias, int64_t rows, int64_t dim) {
  const float* b = bias.numel() > 0 && bias.raw() ? bias.data<float>() : nullptr;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < dim; ++c) residual[r * dim + c] += delta[r * dim + c] + (b ? b[c] : 0.0f);
}

// Row ranges [begin, end) of matrices (or vectors), concatenated into one owned tensor.
struct RowRange {
  const Tensor* t;
  int64_t begin, end;
};
Tensor concat_rows(const std::vector<RowRange>& parts) {
  int64_t rows = 0;
  for (const RowRange& p : parts) rows += p.end - p.begin;
  Shape shape = parts.front().t->shape();
  shape[0] = rows;
  Tensor out = Tensor::empty(shape, parts.front().t->dtype());
  int64_t at = 0;
  for (const RowRange& p : parts) {
    out.slice(0, at, at + p.end - p.begin).copy_from(p.t->slice(0, p.begin, p.end));
    at += p.end - p.begin;
  }
  return out;
}
Tensor columns(const Tensor& t, int64_t begin, int64_t end) { return t.slice(1, begin, end).contiguous(); }
bool defined_nonempty(const Tensor& t) { return t.numel() > 0 && t.raw() != nullptr; }

}  // namespace

ShardedDenseModel::ShardedDenseModel(ModelConfig cfg, ParallelLayout layout, int rank, DenseWeights w,
                                     int64_t local_vocab)
    : cfg_(std::move(cfg)),
      layout_(std::move(layout)),
      rank_(rank),
      coords_(layout_.coords(rank)),
      w_(std::move(w)),
      local_vocab_(local_vocab),
      inv_freq_(cfg_.rope_inv_freq()) {}

LayoutModelDims ShardedDenseModel::layout_dims(const ModelConfig& cfg) {
  if (cfg.is_mla()) return mla_layout_dims(cfg);
  LayoutModelDims d;
  d.num_heads = cfg.num_heads;
  d.num_kv_heads = cfg.num_kv_heads;
  d.num_layers = cfg.num_layers;
  d.num_experts = cfg.num_experts;
  return d;
}

Result<ShardedDenseModel> ShardedDenseModel::shard(const ModelConfig& cfg, const DenseWeights& full,
                                                   const ParallelLayout& layout, int rank) {
  const ParallelConfig& pc = layout.config();
  if (pc.ep > 1 && !cfg.is_moe())
    return invalid_argument("--ep " + std::to_string(pc.ep) + " needs a mixture-of-experts model; " +
                            architecture_name(cfg.arch) + " has no routed experts");
  // MLA caches one latent per token: one "kv head" for the layout (mla_layout_dims).
  const int64_t layout_kv_heads = cfg.is_mla() ? 1 : cfg.num_kv_heads;
  if (layout.dims().num_heads != cfg.num_heads || layout.dims().num_kv_heads != layout_kv_heads ||
      layout.dims().num_layers != cfg.num_layers)
    return invalid_argument("ShardedDenseModel: the layout (" + layout.to_string() +
                            ") was built for other head/layer counts than the model's");
  // The FFN (and LM head) split: over tp, or under Helix over the whole kvp·tp group,
  // whose shares may differ by one column (a kvp of 3 rarely divides a power of two).
  const int ffn_parts = pc.helix ? layout.helix_size() : pc.tp;
  if (!pc.helix && cfg.intermediate_size % pc.tp != 0)
    return invalid_argument("--tp " + std::to_string(pc.tp) + " must divide the MLP width " +
                            std::to_string(cfg.intermediate_size));
  if (pc.helix && cfg.intermediate_size < ffn_parts)
    return invalid_argument("--helix: the FFN group of kvp·tp = " + std::to_string(ffn_parts) +
                            " ranks exceeds the MLP width " + std::to_string(cfg.intermediate_size));
  if (rank < 0 || rank >= layout.world_size())
    return invalid_argument("rank " + std::to_string(rank) + " is outside the layout's world of " +
                            std::to_string(layout.world_size()));

  const RankCoords c = layout.coords(rank);
  const int64_t d = cfg.head_dim, hq = cfg.num_heads, hkv = cfg.num_kv_heads;
  const int64_t q_width = hq * d, kv_width = hkv * d;
  const int64_t q0 = layout.first_q_head(c.tp) * d, q1 = q0 + layout.num_local_q_heads() * d;
  const int64_t k0 = layout.first_kv_head(c.tp) * d, k1 = k0 + layout.num_local_kv_heads() * d;
  const int ffn_index = pc.helix ? layout.helix_index(rank) : c.tp;
  const int64_t inter = cfg.intermediate_size, c0 = ParallelLayout::split_point(inter, ffn_parts, ffn_index),
                ic = ParallelLayout::split_point(inter, ffn_parts, ffn_index + 1) - c0;
  // o_proj input columns: the rank's query heads, or under Helix the share of them whose
  // attention it merges after the all-to-all (helix_attention.h).
  const int64_t o0 = pc.helix ? q0 + layout.helix_first_head(c.kvp) * d : q0;
  const int64_t o1 = pc.helix ? q0 + layout.helix_first_head(c.kvp + 1) * d : q1;

  DenseWeights w;
  const bool first_stage = c.pp == 0, last_stage = c.pp == pc.pp - 1;
  if (first_stage) w.embed_tokens = full.embed_tokens;
  int64_t local_vocab = cfg.vocab_size;
  if (last_stage) {
    w.final_norm = full.final_norm;
    if (cfg.vocab_size % ffn_parts == 0) {
      local_vocab = cfg.vocab_size / ffn_parts;
      // rows: a view
      w.lm_head = full.lm_head.slice(0, ffn_index * local_vocab, (ffn_index + 1) * local_vocab);
    } else {
      w.lm_head = full.lm_head;
    }
  }
  for (int64_t l = layout.first_layer(c.pp); l < layout.end_layer(c.pp); ++l) {
    const DenseLayerWeights& f = full.layers[static_cast<size_t>(l)];
    DenseLayerWeights lw;
    lw.input_norm = f.input_norm;
    lw.post_attention_norm = f.post_attention_norm;
    lw.q_norm = f.q_norm;
    lw.k_norm = f.k_norm;
    if (cfg.is_mla()) {
      LONGCTX_RETURN_IF_ERROR(shard_mla_layer(cfg, f, layout, rank, lw));  // sharded_mla_attention.h
    } else {
      lw.qkv = concat_rows({{&f.qkv, q0, q1},
                            {&f.qkv, q_width + k0, q_width + k1},
                            {&f.qkv, q_width + kv_width + k0, q_width + kv_width + k1}});
      if (defined_nonempty(f.qkv_bias))
        lw.qkv_bias = concat_rows({{&f.qkv_bias, q0, q1},
                                   {&f.qkv_bias, q_width + k0, q_width + k1},
                                   {&f.qkv_bias, q_width + kv_width + k0, q_width + kv_width + k1}});
      lw.o_proj = columns(f.o_proj, o0, o1);
    }
    lw.o_bias = f.o_bias;  // added once, after the all-reduce
    if (f.is_moe()) {
      // Routed experts: TP-split or EP-partitioned (sharded_moe_mlp.h).
      LONGCTX_RETURN_IF_ERROR(shard_moe_layer(cfg, f, layout, rank, ffn_parts, ffn_index, lw));
    } else {
      lw.gate_up = concat_rows({{&f.gate_up, c0, c0 + ic}, {&f.gate_up, inter + c0, inter + c0 + ic}});
      if (defined_nonempty(f.gate_up_bias))
        lw.gate_up_bias =
            concat_rows({{&f.gate_up_bias, c0, c0 + ic}, {&f.gate_up_bias, inter + c0, inter + c0 + ic}});
      lw.down = columns(f.down, c0, c0 + ic);
    }
    lw.down_bias = f.down_bias;  // added once, after the all-reduce
    w.layers.push_back(std::move(lw));
  }
  return ShardedDenseModel(cfg, layout, rank, std::move(w), local_vocab);
}

ShardedSequenceKV ShardedDenseModel::new_kv(int64_t capacity_tokens) const {
  // A rank stores about 1/(dcp·kvp) of the tokens; reserve grows it when needed.
  const int64_t share = capacity_tokens / (int64_t{layout_.config().dcp} * layout_.config().kvp) + 1;
  if (cfg_.is_mla())  // one latent per token (kv_lora_rank + qk_rope_head_dim), K and V alike
    return ShardedSequenceKV(layout_, rank_, static_cast<int64_t>(w_.layers.size()), 1,
                             cfg_.kv_lora_rank + cfg_.qk_rope_head_dim, share, /*kv_shared=*/true);
  return ShardedSequenceKV(layout_, rank_, static_cast<int64_t>(w_.layers.size()),
                           layout_.num_local_kv_heads(), cfg_.head_dim, share);
}

void ShardedDenseModel::attend(const float* q, int64_t q_stride, int64_t num_q_heads, const SeqInfo& s,
                               const KeyBlock& keys, float* o, float* lse) const {
  const int64_t d = cfg_.head_dim;
  for (const QueryRun& run : s.runs) {
    cpu::AttentionParams ap;
    ap.q = q + run.row * q_stride;
    ap.q_stride = q_stride;
    ap.k = keys.k;
    ap.v = keys.v;
    ap.kv_stride = layout_.num_local_kv_heads() * d;
    ap.kv_positions = keys.pos;
    ap.num_kv = keys.n;
    ap.out = o + run.row * num_q_heads * d;
    ap.lse = lse + run.row * num_q_heads;
    ap.num_q = run.len;
    ap.q_pos0 = run.pos0;
    ap.num_q_heads = num_q_heads;
    ap.num_kv_heads = layout_.num_local_kv_heads();
    ap.head_dim = d;
    ap.causal = true;
    cpu::attention(ap);
  }
}

void ShardedDenseModel::ring_exchange(int64_t layer, const float* q, int64_t q_stride, int64_t num_q_heads,
                                      const std::vector<SeqInfo>& seqs, RankCommunicators& comms, float* o,
                                      float* lse) const {
  const int64_t width = layout_.num_local_kv_heads() * cfg_.head_dim, d = cfg_.head_dim;
  int64_t t = 0;
  for (const SeqInfo& s : seqs) t += s.local_rows;

  // A ring message: per sequence, its key count, then K, V [count, width] and the positions.
  std::vector<float> block;
  for (const SeqInfo& s : seqs) {
    const int64_t cnt = s.kv->num_local_tokens();
    ring_put_i64(block, cnt);
    const float* k = s.kv->cache().k(layer) + s.kv->local_slot(0) * width;
    const float* v = s.kv->cache().v(layer) + s.kv->local_slot(0) * width;
    block.insert(block.end(), k, k + cnt * width);
    block.insert(block.end(), v, v + cnt * width);
    ring_put_positions(block, s.kv->local_positions().data(), cnt);
  }
  ring_attend(
      *comms.cp, std::move(block), t * num_q_heads, d,
      [&](const float* at, float* po, float* pl) {
        for (const SeqInfo& s : seqs) {
          const int64_t cnt = ring_get_i64(at);
          const KeyBlock keys{at + 2, at + 2 + cnt * width,
                              reinterpret_cast<const int32_t*>(at + 2 + 2 * cnt * width), cnt};
          attend(q, q_stride, num_q_heads, s, keys, po, pl);
          at += 2 + 2 * cnt * width + cnt;
        }
      },
      o, lse);
}

void ShardedDenseModel::attention_block(int64_t layer, const float* normed, const std::vector<SeqInfo>& seqs,
                                        const std::vector<int32_t>& positions,
                                        const std::vector<int64_t>& slots, RankCommunicators& comms,
                                        float* out) const {
  const DenseLayerWeights& lw = w_.layers[static_cast<size_t>(layer)];
  const int64_t t = static_cast<int64_t>(positions.size());  // this rank's new tokens
  const int64_t d = cfg_.head_dim, hq = layout_.num_local_q_heads(), hkv = layout_.num_local_kv_heads();
  const int64_t q_width = hq * d, kv_width = hkv * d, qkv_width = q_width + 2 * kv_width;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);

  Tensor qkv = Tensor::empty({t, qkv_width}, DType::kF32);
  if (t > 0) weight_linear(normed, t, lw.qkv, qkv.data<float>(), lw.qkv_bias);
  float* q = qkv.data<float>();
  float* k = q + q_width;
  float* v = k + kv_width;
  if (cfg_.qk_norm) {
    for (int64_t i = 0; i < t; ++i) {
      float* row = q + i * qkv_width;
      cpu::rms_norm(row, lw.q_norm.data<float>(), row, hq, d, eps);
      cpu::rms_norm(row + q_width, lw.k_norm.data<float>(), row + q_width, hkv, d, eps);
    }
  }
  cpu::RopeParams rp;
  rp.num_tokens = t;
  rp.head_dim = d;
  rp.token_stride = qkv_width;
  rp.rotary_dim = cfg_.rotary_dim();
  rp.positions = positions.data();
  rp.inv_freq = inv_freq_.data();
  rp.style = cpu::RopeStyle::kRotateHalf;
  rp.x = q;
  rp.num_heads = hq;
  if (t > 0) cpu::apply_rope(rp);
  rp.x = k;
  rp.num_heads = hkv;
  if (t > 0) cpu::apply_rope(rp);

  // Every rank of a TP/KVP group computed K/V of its new tokens; each keeps only those
  // placed on it (slot −1 otherwise).
  int64_t row = 0;
  for (const SeqInfo& s : seqs) {
    cpu::write_kv_cache(k + row * qkv_width, v + row * qkv_width, s.local_rows, qkv_width, kv_width,
                        slots.data() + row, s.kv->cache().k(layer), s.kv->cache().v(layer));
    row += s.local_rows;
  }

  // DCP: the ranks of a DCP group hold the same kv head and different query heads;
  // each needs all the group's queries to attend over its own tokens.
  const int dcp = layout_.config().dcp;
  const int64_t nh = dcp * hq;  // query heads this rank attends with
  const float* qa = q;
  int64_t qa_stride = qkv_width;
  Tensor gathered;
  if (dcp > 1) {
    gathered = Tensor::empty({t, nh, d}, DType::kF32);
    dcp_gather_queries(*comms.dcp, q, qkv_width, t, hq, d, gathered.data<float>());
    qa = gathered.data<float>();
    qa_stride = nh * d;
  }

  // Partial attention over the keys this rank holds: its tokens of each sequence are
  // local slots 1·bs.. in arrival order (one contiguous run of its cache) with their
  // absolute positions beside them.
  Tensor o = Tensor::empty({t, nh, d}, DType::kF32);
  Tensor lse = Tensor::empty({t, nh}, DType::kF32);
  for (const SeqInfo& s : seqs) {
    const int64_t first = s.kv->local_slot(0) * kv_width;
    const KeyBlock keys{s.kv->cache().k(layer) + first, s.kv->cache().v(layer) + first,
                        s.kv->local_positions().data(), s.kv->num_local_tokens()};
    attend(qa, qa_stride, nh, s, keys, o.data<float>(), lse.data<float>());
  }
  // CP: the rest of the sequence's keys are on the other ranks of the ring.
  if (layout_.config().cp > 1)
    ring_exchange(layer, qa, qa_stride, nh, seqs, comms, o.data<float>(), lse.data<float>());

  // Partial states of this rank's own heads: [t · hq] rows of d, and their LSE.
  const int64_t rows = t * hq;
  Tensor mo, ml;
  if (dcp > 1) {
    mo = Tensor::empty({rows, d}, DType::kF32);
    ml = Tensor::empty({rows}, DType::kF32);
    dcp_exchange_partial_states(*comms.dcp, o.data<float>(), lse.data<float>(), t, hq, d, mo.data<float>(),
                                ml.data<float>());
  } else {
    mo = o;
    ml = lse;
  }

  const int kvp = layout_.config().kvp;
  if (layout_.config().helix) {
    // Helix: keep only this rank's share of the heads, merged over every KV shard; the
    // o_proj below takes just those heads' columns (a row-parallel split over kvp·tp).
    if (kvp > 1)
      mo = helix_exchange(layout_, coords_.kvp, mo.data<float>(), ml.data<float>(), t, d, *comms.kvp);
  } else if (kvp > 1) {
    // KVP: every group holds these heads for another shard of the tokens; gather the
    // partial states and merge them in group order (the same result on every member).
    kvp_merge_partial_states(*comms.kvp, mo.data<float>(), ml.data<float>(), rows, d);
  }

  if (t > 0) weight_linear(mo.data<float>(), t, lw.o_proj, out, Tensor());
}

void ShardedDenseModel::mlp_block(int64_t layer, const float* normed, int64_t t, float* out) const {
  const DenseLayerWeights& lw = w_.layers[static_cast<size_t>(layer)];
  const int64_t ic = lw.down.size(1);
  if (t == 0) return;
  Tensor gate_up = Tensor::empty({t, 2 * ic}, DType::kF32);
  weight_linear(normed, t, lw.gate_up, gate_up.data<float>(), lw.gate_up_bias);
  Tensor act = Tensor::empty({t, ic}, DType::kF32);
  cpu::silu_mul(gate_up.data<float>(), gate_up.data<float>() + ic, act.data<float>(), t, ic, 2 * ic);
  weight_linear(act.data<float>(), t, lw.down, out, Tensor());
}

Result<Tensor> ShardedDenseModel::forward(std::span<ShardedStep> batch, RankCommunicators& comms) const {
  const int64_t hidden = cfg_.hidden_size, vocab = cfg_.vocab_size;
  const ParallelConfig& pc = layout_.config();
  // Validate everything before touching a cache: a rejected batch leaves them as they were.
  int64_t total = 0;
  for (size_t s = 0; s < batch.size(); ++s) {
    const ShardedStep& st = batch[s];
    if (!st.kv)
      return invalid_argument("sharded forward: sequence " + std::to_string(s) + " has no KV cache");
    const int64_t n = static_cast<int64_t>(st.ids.size());
    for (int64_t i = 0; i < n; ++i) {
      const int32_t id = st.ids[static_cast<size_t>(i)];
      if (id < 0 || id >= vocab)
        return invalid_argument("token id " + std::to_string(id) + " at index " + std::to_string(i) +
                                " of sequence " + std::to_string(s) + " is outside the vocabulary [0, " +
                                std::to_string(vocab) + ")");
    }
    for (int64_t r : st.logit_rows)
      if (r < 0 || r >= n)
        return invalid_argument("logit row " + std::to_string(r) + " is outside sequence " +
                                std::to_string(s) + "'s " + std::to_string(n) + " new tokens");
    total += n;
  }
  if (pc.helix && !comms.helix)
    return invalid_argument("sharded forward: the layout is Helix but the rank has no helix communicator");
  if (pc.ep > 1 && !comms.ep)
    return invalid_argument("sharded forward: the layout has --ep " + std::to_string(pc.ep) +
                            " but the rank has no EP communicator");
  int64_t num_logits = 0;
  for (const ShardedStep& st : batch) num_logits += static_cast<int64_t>(st.logit_rows.size());
  if (total == 0) return returns_logits() ? Tensor::empty({num_logits, vocab}, DType::kF32) : Tensor();

  // This rank's share of the step: under CP only the new tokens it computes (the same
  // split on every rank), else all of them.
  std::vector<int32_t> ids, positions;
  std::vector<int64_t> slots;
  std::vector<SeqInfo> seqs;
  std::vector<int64_t> logit_rows;  // local rows whose logits this rank computes
  std::vector<int> logit_owner;     // per requested row (batch order): its CP rank
  for (const ShardedStep& st : batch) {
    const int64_t n = static_cast<int64_t>(st.ids.size()), start = st.kv->num_tokens();
    const std::vector<int64_t> seq_slots = st.kv->append(n);
    SeqInfo info{st.kv, {}, 0};
    std::vector<int64_t> local_row(static_cast<size_t>(n), -1);
    for (int64_t i = 0; i < n; ++i) {
      if (layout_.cp_rank_of_new_token(i, n, start) != coords_.cp) continue;
      const int64_t r = static_cast<int64_t>(ids.size());
      local_row[size_t(i)] = r;
      if (!info.runs.empty() && info.runs.back().pos0 + info.runs.back().len == start + i)
        ++info.runs.back().len;
      else
        info.runs.push_back({r, 1, start + i});
      ids.push_back(st.ids[size_t(i)]);
      positions.push_back(static_cast<int32_t>(start + i));
      slots.push_back(seq_slots[size_t(i)]);
      ++info.local_rows;
    }
    for (int64_t r : st.logit_rows) {
      logit_owner.push_back(layout_.cp_rank_of_new_token(r, n, start));
      if (local_row[size_t(r)] >= 0) logit_rows.push_back(local_row[size_t(r)]);
    }
    seqs.push_back(std::move(info));
  }
  const int64_t t = static_cast<int64_t>(ids.size());
  const int64_t nrows = static_cast<int64_t>(logit_rows.size());

  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  Tensor residual = Tensor::empty({t, hidden}, DType::kF32);
  if (coords_.pp == 0)
    cpu::embedding(ids.data(), t, w_.embed_tokens.raw(), w_.embed_tokens.dtype(), hidden,
                   residual.data<float>());
  else
    comms.pp->recv(residual.data<float>(), t * hidden, coords_.pp - 1);

  // The all-reduces of o_proj and the FFN, and the LM head's gather: the TP group, or
  // under Helix the kvp·tp ranks re-partitioned as one TP group.
  Communicator& ffn = pc.helix ? *comms.helix : *comms.tp;
  std::vector<MlaSequence> mla_seqs;  // the same split, for sharded_mla_attention
  for (int64_t row = 0; const SeqInfo& s : seqs) {
    MlaSequence ms{s.kv, row, s.local_rows, {}};
    for (const QueryRun& r : s.runs) ms.runs.push_back({r.row, r.len, r.pos0});
    mla_seqs.push_back(std::move(ms));
    row += s.local_rows;
  }
  Tensor normed = Tensor::empty({t, hidden}, DType::kF32);
  Tensor partial = Tensor::empty({t, hidden}, DType::kF32);
  for (size_t l = 0; l < w_.layers.size(); ++l) {
    const DenseLayerWeights& lw = w_.layers[l];
    const int64_t li = static_cast<int64_t>(l);
    cpu::rms_norm(residual.data<float>(), lw.input_norm.data<float>(), normed.data<float>(), t, hidden, eps);
    if (cfg_.is_mla())
      sharded_mla_attention_forward(cfg_, layout_, lw, inv_freq_.data(), li, normed.data<float>(), mla_seqs,
                                    positions, slots, comms, partial.data<float>());
    else
      attention_block(li, normed.data<float>(), seqs, positions, slots, comms, partial.data<float>());
    ffn.all_reduce_sum(partial.data<float>(), t * hidden);
    add_rows(residual.data<float>(), partial.data<float>(), lw.o_bias, t, hidden);
    cpu::rms_norm(residual.data<float>(), lw.post_attention_norm.data<float>(), normed.data<float>(), t,
                  hidden, eps);
    if (lw.is_moe())
      sharded_moe_mlp_forward(cfg_, lw, normed.data<float>(), t, ffn,
                              pc.helix || pc.kvp == 1 ? nullptr : comms.kvp.get(), comms.ep.get(),
                              partial.data<float>());
    else
      mlp_block(li, normed.data<float>(), t, partial.data<float>());
    ffn.all_reduce_sum(partial.data<float>(), t * hidden);
    add_rows(residual.data<float>(), partial.data<float>(), lw.down_bias, t, hidden);
  }

  if (!returns_logits()) {
    comms.pp->send(residual.data<float>(), t * hidden, coords_.pp + 1);
    return Tensor();
  }
  Tensor picked = Tensor::empty({nrows, hidden}, DType::kF32);
  for (int64_t i = 0; i < nrows; ++i)
    std::memcpy(picked.data<float>() + i * hidden, residual.data<float>() + logit_rows[size_t(i)] * hidden,
                static_cast<size_t>(hidden) * sizeof(float));
  cpu::rms_norm(picked.data<float>(), w_.final_norm.data<float>(), picked.data<float>(), nrows, hidden, eps);
  Tensor local = Tensor::empty({nrows, local_vocab_}, DType::kF32);
  if (nrows > 0) weight_linear(picked.data<float>(), nrows, w_.lm_head, local.data<float>(), Tensor());
  Tensor mine = local;
  if (local_vocab_ != vocab) {
    // Vocabulary split: gather [tp][rows][vocab / tp] and lay it out as [rows][vocab].
    Tensor all = Tensor::empty({ffn.size(), nrows, local_vocab_}, DType::kF32);
    ffn.all_gather(local.data<float>(), nrows * local_vocab_, all.data<float>());
    mine = Tensor::empty({nrows, vocab}, DType::kF32);
    for (int j = 0; j < ffn.size(); ++j)
      for (int64_t i = 0; i < nrows; ++i)
        std::memcpy(mine.data<float>() + i * vocab + j * local_vocab_,
                    all.data<float>() + (j * nrows + i) * local_vocab_,
                    static_cast<size_t>(local_vocab_) * sizeof(float));
  }
  if (pc.cp == 1) return mine;
  // CP: each row was computed on the rank that owns its token; gather them (padded to
  // the largest share) and put them back in the requested order.
  std::vector<int64_t> per_rank(static_cast<size_t>(pc.cp), 0);
  for (int o : logit_owner) ++per_rank[size_t(o)];
  const int64_t most = *std::max_element(per_rank.begin(), per_rank.end());
  Tensor padded = Tensor::zeros({most, vocab}, DType::kF32);
  if (nrows > 0) padded.slice(0, 0, nrows).copy_from(mine);
  Tensor all = Tensor::empty({pc.cp, most, vocab}, DType::kF32);
  comms.cp->all_gather(padded.data<float>(), most * vocab, all.data<float>());
  Tensor logits = Tensor::empty({num_logits, vocab}, DType::kF32);
  std::vector<int64_t> taken(static_cast<size_t>(pc.cp), 0);
  for (int64_t i = 0; i < num_logits; ++i) {
    const int o = logit_owner[size_t(i)];
    std::memcpy(logits.data<float>() + i * vocab, all.data<float>() + (o * most + taken[size_t(o)]++) * vocab,
                static_cast<size_t>(vocab) * sizeof(float));
  }
  return logits;
}

Result<Tensor> ShardedDenseModel::forward(std::span<const int32_t> ids, ShardedSequenceKV& kv,
                                          std::span<const int64_t> logit_rows,
                                          RankCommunicators& comms) const {
  ShardedStep step{ids, &kv, std::vector<int64_t>(logit_rows.begin(), logit_rows.end())};
  return forward(std::span<ShardedStep>(&step, 1), comms);
}

}  // namespace longctx
