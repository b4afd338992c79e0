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
namespace {

void copy_floats(float* dst, const float* src, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

// y[m, n] = x[m, k] · w[n, k]ᵀ for a raw fp32 matrix (one head's slice of W_uk or W_uv).
void linear_f32(const float* x, int64_t m, const float* w, int64_t n, int64_t k, float* y) {
  cpu::LinearParams p;
  p.x = x;
  p.w = w;
  p.y = y;
  p.m = m;
  p.n = n;
  p.k = k;
  cpu::linear(p);
}

}  // namespace

void mla_queries_and_latents(const ModelConfig& cfg, const DenseLayerWeights& lw, const double* inv_freq,
                             const float* normed, int64_t t, const int32_t* positions, int64_t h, float* q,
                             float* kv) {
  const int64_t nope = cfg.qk_nope_head_dim, rope = cfg.qk_rope_head_dim, lora = cfg.kv_lora_rank;
  const int64_t qk = nope + rope, lat = lora + rope;
  const float eps = static_cast<float>(cfg.rms_norm_eps);
  if (cfg.q_lora_rank > 0) {
    std::vector<float> qa(static_cast<size_t>(t * cfg.q_lora_rank));
    weight_linear(normed, t, lw.q_a, qa.data());
    cpu::rms_norm(qa.data(), lw.q_a_norm.data<float>(), qa.data(), t, cfg.q_lora_rank, eps);
    weight_linear(qa.data(), t, lw.q_b, q);
  } else {
    weight_linear(normed, t, lw.q_proj, q);
  }
  weight_linear(normed, t, lw.kv_a, kv);
  for (int64_t i = 0; i < t; ++i)
    cpu::rms_norm(kv + i * lat, lw.kv_a_norm.data<float>(), kv + i * lat, 1, lora, eps);

  cpu::RopeParams rp;
  rp.num_tokens = t;
  rp.rotary_dim = rope;
  rp.positions = positions;
  rp.inv_freq = inv_freq;
  rp.style = cfg.rope_interleave ? cpu::RopeStyle::kInterleaved : cpu::RopeStyle::kRotateHalf;
  rp.x = q + nope;  // the rope part of each [nope | rope] head
  rp.num_heads = h;
  rp.head_dim = qk;
  rp.token_stride = h * qk;
  cpu::apply_rope(rp);
  rp.x = kv + lora;
  rp.num_heads = 1;
  rp.head_dim = lat;
  rp.token_stride = lat;
  cpu::apply_rope(rp);
}

void mla_absorb_queries(const ModelConfig& cfg, const DenseLayerWeights& lw, const float* q, int64_t t,
                        int64_t h, float* qabs) {
  const int64_t nope = cfg.qk_nope_head_dim, rope = cfg.qk_rope_head_dim, lora = cfg.kv_lora_rank;
  const int64_t qk = nope + rope, lat = lora + rope;
  std::vector<float> nope_in(static_cast<size_t>(t * nope)), absorbed(static_cast<size_t>(t * lora));
  for (int64_t hh = 0; hh < h; ++hh) {
    for (int64_t i = 0; i < t; ++i) copy_floats(nope_in.data() + i * nope, q + (i * h + hh) * qk, nope);
    // [t, nope] · (W_uk[h]ᵀ as [lora, nope])ᵀ
    linear_f32(nope_in.data(), t, lw.k_up_t.data<float>() + hh * lora * nope, lora, nope, absorbed.data());
    for (int64_t i = 0; i < t; ++i) {
      float* dst = qabs + (i * h + hh) * lat;
      copy_floats(dst, absorbed.data() + i * lora, lora);
      copy_floats(dst + lora, q + (i * h + hh) * qk + nope, rope);
    }
  }
}

void mla_value_heads(const ModelConfig& cfg, const DenseLayerWeights& lw, const float* latent_out, int64_t t,
                     int64_t h, int64_t first_head, float* heads) {
  const int64_t lora = cfg.kv_lora_rank, lat = lora + cfg.qk_rope_head_dim, vd = cfg.v_head_dim;
  std::vector<float> lat_in(static_cast<size_t>(t * lora)), vout(static_cast<size_t>(t * vd));
  for (int64_t j = 0; j < h; ++j) {
    for (int64_t i = 0; i < t; ++i)
      copy_floats(lat_in.data() + i * lora, latent_out + (i * h + j) * lat, lora);
    linear_f32(lat_in.data(), t, lw.v_up.data<float>() + (first_head + j) * vd * lora, vd, lora, vout.data());
    for (int64_t i = 0; i < t; ++i) copy_floats(heads + (i * h + j) * vd, vout.data() + i * vd, vd);
  }
}

void mla_attention_forward(const ModelConfig& cfg, const DenseLayerWeights& lw, const double* inv_freq,
                           const float* normed, const ForwardBatch& batch, PagedKVCache& cache, int64_t layer,
                           float* residual) {
  const int64_t t = batch.num_tokens(), h = cfg.num_heads, nope = cfg.qk_nope_head_dim;
  const int64_t rope = cfg.qk_rope_head_dim, lora = cfg.kv_lora_rank, vd = cfg.v_head_dim, qk = nope + rope;
  const int64_t lat = lora + rope;  // the cached latent per token

  // Queries [t, H, nope + rope] and latents [t, kv_lora + rope].
  std::vector<float> q(static_cast<size_t>(t * h * qk)), kv(static_cast<size_t>(t * lat));
  mla_queries_and_latents(cfg, lw, inv_freq, normed, t, batch.positions.data(), h, q.data(), kv.data());

  cpu::write_kv_cache(kv.data(), kv.data(), t, lat, lat, batch.slots.data(), cache.k(layer), cache.k(layer));

  // Absorbed queries [t, H, kv_lora + rope].
  std::vector<float> qa(static_cast<size_t>(t * h * lat));
  mla_absorb_queries(cfg, lw, q.data(), t, h, qa.data());

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
  std::vector<float> heads(static_cast<size_t>(t * h * vd));
  mla_value_heads(cfg, lw, attn.data(), t, h, 0, heads.data());
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
