#include "model/sharded_mla_attention.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "model/helix_attention.h"
#include "model/mla_attention.h"
#include "model/partial_attention_exchange.h"
#include "model/weight_linear.h"
#include "ops/cpu/attention.h"
#include "ops/cpu/paged_attention.h"

namespace longctx {
namespace {

// Latents of one sequence held somewhere: [n, lat] and their positions.
struct LatentBlock {
  const float* latent;
  const int32_t* pos;
  int64_t n;
};

// o/lse rows of s's runs ← attention of the absorbed queries qa [t, nh, lat] over keys.
void attend_latents(const float* qa, int64_t nh, int64_t lat, float scale, const MlaSequence& s,
                    const LatentBlock& keys, float* o, float* lse) {
  for (const MlaSequence::Run& run : s.runs) {
    cpu::AttentionParams ap;
    ap.q = qa + run.row * nh * lat;
    ap.q_stride = nh * lat;
    ap.k = keys.latent;
    ap.v = keys.latent;
    ap.kv_stride = lat;
    ap.kv_positions = keys.pos;
    ap.num_kv = keys.n;
    ap.out = o + run.row * nh * lat;
    ap.lse = lse + run.row * nh;
    ap.num_q = run.len;
    ap.q_pos0 = run.pos0;
    ap.num_q_heads = nh;
    ap.num_kv_heads = 1;
    ap.head_dim = lat;
    ap.scale = scale;
    ap.causal = true;
    cpu::attention(ap);
  }
}

// CP: every rank's latents of each sequence go round the ring (per sequence its latent
// count, the latents [count, lat] and their positions); the partial states over each
// block are merged into o/lse by LSE.
void ring_exchange(Communicator& ring, int64_t layer, int64_t lat, const float* qa, int64_t nh, float scale,
                   const std::vector<MlaSequence>& seqs, int64_t t, float* o, float* lse) {
  std::vector<float> block;
  for (const MlaSequence& s : seqs) {
    const int64_t cnt = s.kv->num_local_tokens();
    ring_put_i64(block, cnt);
    const float* latent = s.kv->cache().k(layer) + s.kv->local_slot(0) * lat;
    block.insert(block.end(), latent, latent + cnt * lat);
    ring_put_positions(block, s.kv->local_positions().data(), cnt);
  }
  ring_attend(
      ring, std::move(block), t * nh, lat,
      [&](const float* at, float* po, float* pl) {
        for (const MlaSequence& s : seqs) {
          const int64_t cnt = ring_get_i64(at);
          const LatentBlock keys{at + 2, reinterpret_cast<const int32_t*>(at + 2 + cnt * lat), cnt};
          attend_latents(qa, nh, lat, scale, s, keys, po, pl);
          at += 2 + cnt * lat + cnt;
        }
      },
      o, lse);
}

}  // namespace

LayoutModelDims mla_layout_dims(const ModelConfig& cfg) {
  LayoutModelDims d;
  d.num_heads = cfg.num_heads;
  d.num_kv_heads = 1;  // the latent
  d.num_layers = cfg.num_layers;
  d.num_experts = cfg.num_experts;
  return d;
}

Status shard_mla_layer(const ModelConfig& cfg, const DenseLayerWeights& full, const ParallelLayout& layout,
                       int rank, DenseLayerWeights& out) {
  const int64_t hl = layout.num_local_q_heads(), h0 = layout.first_q_head(layout.coords(rank).tp);
  const int64_t qk = cfg.qk_nope_head_dim + cfg.qk_rope_head_dim, vd = cfg.v_head_dim;
  if (cfg.q_lora_rank > 0) {
    out.q_a = full.q_a;
    out.q_a_norm = full.q_a_norm;
    out.q_b = full.q_b.slice(0, h0 * qk, (h0 + hl) * qk);  // rows: a view
  } else {
    out.q_proj = full.q_proj.slice(0, h0 * qk, (h0 + hl) * qk);
  }
  out.kv_a = full.kv_a;
  out.kv_a_norm = full.kv_a_norm;
  out.k_up_t = full.k_up_t.slice(0, h0, h0 + hl);
  out.v_up = full.v_up.slice(0, h0, h0 + hl);
  // o_proj's input columns: the rank's heads, or under Helix its KVP rank's share of them.
  const int kvp_rank = layout.coords(rank).kvp;
  const int64_t o0 = layout.config().helix ? h0 + layout.helix_first_head(kvp_rank) : h0;
  const int64_t o1 = layout.config().helix ? h0 + layout.helix_first_head(kvp_rank + 1) : h0 + hl;
  out.o_proj = full.o_proj.slice(1, o0 * vd, o1 * vd).contiguous();
  return Status::ok();
}

void sharded_mla_attention_forward(const ModelConfig& cfg, const ParallelLayout& layout,
                                   const DenseLayerWeights& lw, const double* inv_freq, int64_t layer,
                                   const float* normed, const std::vector<MlaSequence>& seqs,
                                   const std::vector<int32_t>& positions, const std::vector<int64_t>& slots,
                                   RankCommunicators& comms, float* out) {
  const int64_t t = static_cast<int64_t>(positions.size()), hl = layout.num_local_q_heads();
  const int64_t nope = cfg.qk_nope_head_dim, rope = cfg.qk_rope_head_dim, lora = cfg.kv_lora_rank;
  const int64_t vd = cfg.v_head_dim, qk = nope + rope, lat = lora + rope;

  // This rank's heads' queries [t, hl, nope + rope] and every token's latent [t, lat].
  std::vector<float> q(static_cast<size_t>(t * hl * qk)), kv(static_cast<size_t>(t * lat));
  if (t > 0) mla_queries_and_latents(cfg, lw, inv_freq, normed, t, positions.data(), hl, q.data(), kv.data());
  // Every rank computed every new latent; each keeps those placed on it (slot −1 otherwise).
  for (const MlaSequence& s : seqs) {
    float* cache = s.kv->cache().k(layer);
    cpu::write_kv_cache(kv.data() + s.row * lat, kv.data() + s.row * lat, s.len, lat, lat,
                        slots.data() + s.row, cache, cache);
  }

  // Absorbed queries [t, hl, lat]: q_nope[h] · W_uk[h], then the roped q_pe.
  std::vector<float> qabs(static_cast<size_t>(t * hl * lat));
  if (t > 0) mla_absorb_queries(cfg, lw, q.data(), t, hl, qabs.data());

  // DCP: the group's ranks hold different latent tokens and different heads; each
  // attends with all the group's absorbed queries over its own latents.
  const int dcp = layout.config().dcp;
  const int64_t nh = dcp * hl;
  std::vector<float> qall;
  const float* qa = qabs.data();
  if (dcp > 1) {
    qall.resize(static_cast<size_t>(t * nh * lat));
    dcp_gather_queries(*comms.dcp, qabs.data(), hl * lat, t, hl, lat, qall.data());
    qa = qall.data();
  }

  // Partial attention (MQA over the one latent "head"; K and V the same memory) over
  // the latents this rank holds, with their absolute positions for the causal mask.
  std::vector<float> o(static_cast<size_t>(t * nh * lat)), lse(static_cast<size_t>(t * nh));
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(qk)));
  for (const MlaSequence& s : seqs) {
    const LatentBlock keys{s.kv->cache().k(layer) + s.kv->local_slot(0) * lat, s.kv->local_positions().data(),
                           s.kv->num_local_tokens()};
    attend_latents(qa, nh, lat, scale, s, keys, o.data(), lse.data());
  }
  // CP: the rest of each sequence's latents are on the other ranks of the ring.
  if (layout.config().cp > 1)
    ring_exchange(*comms.cp, layer, lat, qa, nh, scale, seqs, t, o.data(), lse.data());

  // Merged states of this rank's own heads [t · hl] rows of lat.
  const int64_t rows = t * hl;
  std::vector<float> mo(static_cast<size_t>(rows * lat)), ml(static_cast<size_t>(rows));
  if (dcp > 1) {
    dcp_exchange_partial_states(*comms.dcp, o.data(), lse.data(), t, hl, lat, mo.data(), ml.data());
  } else {
    mo = std::move(o);
    ml = std::move(lse);
  }
  const int kvp = layout.config().kvp;
  // Heads whose output this rank projects: all of its TP heads, or under Helix its
  // share of them after the all-to-all that merges every KV shard's partial state.
  int64_t h_first = 0, h_count = hl;
  Tensor helix_merged;
  const float* merged = mo.data();
  if (layout.config().helix) {
    const int k = comms.kvp->rank();  // the KVP group is ordered by kvp coordinate
    h_first = layout.helix_first_head(k);
    h_count = layout.helix_first_head(k + 1) - h_first;
    if (kvp > 1) {
      helix_merged = helix_exchange(layout, k, mo.data(), ml.data(), t, lat, *comms.kvp);
      merged = helix_merged.data<float>();
    }
  } else if (kvp > 1) {
    // KVP: the other groups attended over other shards of the tokens with the same heads.
    kvp_merge_partial_states(*comms.kvp, mo.data(), ml.data(), rows, lat);
  }

  // out = o_proj(heads), heads[h] = latent output's first kv_lora dims · W_uv[h]ᵀ.
  if (t == 0) return;
  if (h_count == 0) {  // a Helix rank with no heads of its own adds nothing to the all-reduce
    std::fill(out, out + t * cfg.hidden_size, 0.0f);
    return;
  }
  std::vector<float> heads(static_cast<size_t>(t * h_count * vd));
  mla_value_heads(cfg, lw, merged, t, h_count, h_first, heads.data());
  weight_linear(heads.data(), t, lw.o_proj, out);
}

}  // namespace longctx
