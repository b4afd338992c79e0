#include "model/mla_attention.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "model/batch_attention.h"
#include "model/weight_linear.h"
#include "ops/cpu/linear.h"
#include "ops/cpu/norm.h"
#include "ops/cpu/paged_attention.h"
#include "ops/cpu/rope.h"

namespace longctx {
void mla_attention_forward(const ModelConfig& cfg, const DenseLayerWeights& lw, const double* inv_freq,
                           const float* normed, const ForwardBatch& batch, PagedKVCache& cache, int64_t layer,
                           float* residual) {
  const int64_t t = batch.num_tokens(), h = cfg.num_heads, nope = cfg.qk_nope_head_dim;
  const int64_t rope = cfg.qk_rope_head_dim, lora = cfg.kv_lora_rank, vd = cfg.v_head_dim, qk = nope + rope;
  const int64_t lat = lora + rope;  // the cached latent per token
  const float eps = static_cast<float>(cfg.rms_norm_eps);
  const cpu::RopeStyle style = cfg.rope_interleave ? cpu::RopeStyle::kInterleaved : cpu::RopeStyle::kRotateHalf;

  // Queries [t, H, nope + rope].
  std::vector<float> q(static_cast<size_t>(t * h * qk));
  if (cfg.q_lora_rank > 0) {
    std::vector<float> qa(static_cast<size_t>(t * cfg.q_lora_rank));
    weight_linear(normed, t, lw.q_a, qa.data());
    cpu::rms_norm(qa.data(), lw.q_a_norm.data<float>(), qa.data(), t, cfg.q_lora_rank, eps);
    weight_linear(qa.data(), t, lw.q_b, q.data());
  } else {
    weight_linear(normed, t, lw.q_proj, q.data());
  }
  // Latents [t, kv_lora + rope]: normed compressed kv, then the roped shared key part.
  std::vector<float> kv(static_cast<size_t>(t * lat));
  weight_linear(normed, t, lw.kv_a, kv.data());
  for (int64_t i = 0; i < t; ++i) cpu::rms_norm(kv.data() + i * lat, lw.kv_a_norm.data<float>(), kv.data() + i * lat, 1, lora, eps);

  cpu::RopeParams rp;
  rp.num_tokens = t;
  rp.rotary_dim = rope;
  rp.positions = batch.positions.data();
  rp.inv_freq = inv_freq;
  rp.style = style;
  rp.x = q.data() + nope;  // the rope part of each [nope | rope] head
  rp.num_heads = h;
  rp.head_dim = qk;
  rp.token_stride = h * qk;
  cpu::apply_rope(rp);
  rp.x = kv.data() + lora;
  rp.num_heads = 1;
  rp.head_dim = lat;
  rp.token_stride = lat;
  cpu::apply_rope(rp);

  cpu::write_kv_cache(kv.data(), kv.data(), t, lat, lat, batch.slots.data(), cache.k(layer), cache.k(layer));

  // Absorbed queries [t, H, kv_lora + rope]: q_nope[h] · W_uk[h], then q_pe as is.
  std::vector<float> qa(static_cast<size_t>(t * h * lat));
  std::vector<float> nope_in(static_cast<size_t>(t * nope)), absorbed(static_cast<size_t>(t * lora));
  for (int64_t hh = 0; hh < h; ++hh) {
    for (int64_t i = 0; i < t; ++i)
      std::memcpy(nope_in.data() + i * nope, q.data() + (i * h + hh) * qk, static_cast<size_t>(nope) * sizeof(float));
    cpu::LinearParams p;  // [t, nope] · (W_uk[h]ᵀ as [lora, nope])ᵀ
    p.x = nope_in.data();
    p.w = lw.k_up_t.data<float>() + hh * lora * nope;
    p.y = absorbed.data();
    p.m = t;
    p.n = lora;
    p.k = nope;
    cpu::linear(p);
    for (int64_t i = 0; i < t; ++i) {
      float* dst = qa.data() + (i * h + hh) * lat;
      std::memcpy(dst, absorbed.data() + i * lora, static_cast<size_t>(lora) * sizeof(float));
      std::memcpy(dst + lora, q.data() + (i * h + hh) * qk + nope, static_cast<size_t>(rope) * sizeof(float));
    }
  }

  std::vector<float> attn(static_cast<size_t>(t * h * lat));
  // V is the same latent as K (the cache aliases them); only its first kv_lora dims are used.
  cpu::PagedAttentionParams ap = batch_attention_params(batch, cache, layer);
  ap.q = qa.data();
  ap.out = attn.data();
  ap.num_q_heads = h;
  ap.num_kv_heads = 1;
  ap.head_dim = lat;
  ap.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(qk)));
  cpu::paged_attention(ap);

  // out[h] = latent_out[h] · W_uv[h]ᵀ, heads side by side, then o_proj into the residual.
  std::vector<float> lat_in(static_cast<size_t>(t * lora)), vout(static_cast<size_t>(t * vd));
  std::vector<float> heads(static_cast<size_t>(t * h * vd));
  for (int64_t hh = 0; hh < h; ++hh) {
    for (int64_t i = 0; i < t; ++i)
      std::memcpy(lat_in.data() + i * lora, attn.data() + (i * h + hh) * lat, static_cast<size_t>(lora) * sizeof(float));
    cpu::LinearParams p;
    p.x = lat_in.data();
    p.w = lw.v_up.data<float>() + hh * vd * lora;
    p.y = vout.data();
    p.m = t;
    p.n = vd;
    p.k = lora;
    cpu::linear(p);
    for (int64_t i = 0; i < t; ++i)
      std::memcpy(heads.data() + (i * h + hh) * vd, vout.data() + i * vd, static_cast<size_t>(vd) * sizeof(float));
  }
  cpu::LinearParams o;
  o.x = heads.data();
  o.w = lw.o_proj.raw();
  o.w_dtype = lw.o_proj.dtype();
  o.y = residual;
  o.m = t;
  o.n = lw.o_proj.size(0);
  o.k = lw.o_proj.size(1);
  o.accumulate = true;
  cpu::linear(o);
}

}  // namespace longctx
