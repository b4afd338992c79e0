#include "model/dense_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "model/batch_attention.h"
#include "model/mla_attention.h"
#include "model/weight_linear.h"
#include "model/moe_mlp.h"
#include "ops/cpu/activation.h"
#include "ops/cpu/attention.h"
#include "ops/cpu/embedding.h"
#include "ops/cpu/linear.h"
#include "ops/cpu/norm.h"
#include "ops/cpu/paged_attention.h"
#include "ops/cpu/rope.h"

namespace longctx {
DenseModel::DenseModel(ModelConfig cfg, DenseWeights w)
    : cfg_(std::move(cfg)), w_(std::move(w)), inv_freq_(cfg_.rope_inv_freq()) {}

Result<DenseModel> DenseModel::load(const std::filesystem::path& dir, const ModelLoadOptions& opts) {
  LONGCTX_ASSIGN_OR_RETURN(ModelConfig cfg, load_model_config(dir));
  LONGCTX_ASSIGN_OR_RETURN(Checkpoint ckpt, Checkpoint::open(dir));
  return from_checkpoint(std::move(cfg), ckpt, opts);
}

Result<DenseModel> DenseModel::from_checkpoint(ModelConfig cfg, const Checkpoint& ckpt,
                                               const ModelLoadOptions& opts) {
  LONGCTX_ASSIGN_OR_RETURN(DenseWeights w, load_dense_weights(ckpt, cfg, opts.dtype));
  return DenseModel(std::move(cfg), std::move(w));
}

SequenceKV DenseModel::new_kv(int64_t capacity_tokens) const {
  const KVCacheShape s = kv_cache_shape(1, 16);
  return SequenceKV(s.num_layers, s.num_kv_heads, s.head_dim, capacity_tokens, s.block_size, s.kv_shared);
}

KVCacheShape DenseModel::kv_cache_shape(int64_t num_blocks, int64_t block_size) const {
  if (cfg_.is_mla())  // one latent per token: (kv_lora_rank + qk_rope_head_dim), K and V alike
    return {cfg_.num_layers, num_blocks, block_size, 1, cfg_.kv_lora_rank + cfg_.qk_rope_head_dim, true};
  return {cfg_.num_layers, num_blocks, block_size, cfg_.num_kv_heads, cfg_.head_dim, false};
}

void DenseModel::attention_block(int64_t layer, const float* normed, const ForwardBatch& batch, PagedKVCache& cache,
                                 float* residual) const {
  const DenseLayerWeights& lw = w_.layers[static_cast<size_t>(layer)];
  const int64_t t = batch.num_tokens();
  const int64_t d = cfg_.head_dim, hq = cfg_.num_heads, hkv = cfg_.num_kv_heads;
  const int64_t q_width = hq * d, kv_width = hkv * d, qkv_width = q_width + 2 * kv_width;

  Tensor qkv = Tensor::empty({t, qkv_width}, DType::kF32);
  weight_linear(normed, t, lw.qkv, qkv.data<float>(), lw.qkv_bias, false);
  float* q = qkv.data<float>();
  float* k = q + q_width;
  float* v = k + kv_width;

  if (cfg_.qk_norm) {  // Qwen3: RMSNorm over each head's vector, before rope
#pragma omp parallel for schedule(static) if (t > 16)
    for (int64_t i = 0; i < t; ++i) {
      float* row = q + i * qkv_width;
      cpu::rms_norm(row, lw.q_norm.data<float>(), row, hq, d, static_cast<float>(cfg_.rms_norm_eps));
      cpu::rms_norm(row + q_width, lw.k_norm.data<float>(), row + q_width, hkv, d,
                    static_cast<float>(cfg_.rms_norm_eps));
    }
  }

  cpu::RopeParams rp;
  rp.num_tokens = t;
  rp.head_dim = d;
  rp.token_stride = qkv_width;
  rp.rotary_dim = cfg_.rotary_dim();
  rp.positions = batch.positions.data();
  rp.inv_freq = inv_freq_.data();
  rp.style = cpu::RopeStyle::kRotateHalf;
  rp.x = q;
  rp.num_heads = hq;
  cpu::apply_rope(rp);
  rp.x = k;
  rp.num_heads = hkv;
  cpu::apply_rope(rp);

  cpu::write_kv_cache(k, v, t, qkv_width, kv_width, batch.slots.data(), cache.k(layer), cache.v(layer));

  Tensor attn = Tensor::empty({t, q_width}, DType::kF32);
  Tensor lse = Tensor::empty({t, hq}, DType::kF32);
  cpu::PagedAttentionParams ap = batch_attention_params(batch, cache, layer);
  ap.q = q;
  ap.q_stride = qkv_width;
  ap.out = attn.data<float>();
  ap.lse = lse.data<float>();
  ap.num_q_heads = hq;
  ap.num_kv_heads = hkv;
  ap.head_dim = d;
  cpu::paged_attention(ap);

  weight_linear(attn.data<float>(), t, lw.o_proj, residual, lw.o_bias, /*accumulate=*/true);
}

void DenseModel::mlp_block(int64_t layer, const float* normed, int64_t t, float* residual) const {
  const DenseLayerWeights& lw = w_.layers[static_cast<size_t>(layer)];
  if (lw.is_moe()) {
    moe_mlp_forward(cfg_, lw, normed, t, residual);
    return;
  }
  const int64_t inter = cfg_.intermediate_size;
  Tensor gate_up = Tensor::empty({t, 2 * inter}, DType::kF32);
  weight_linear(normed, t, lw.gate_up, gate_up.data<float>(), lw.gate_up_bias, false);
  Tensor act = Tensor::empty({t, inter}, DType::kF32);
  cpu::silu_mul(gate_up.data<float>(), gate_up.data<float>() + inter, act.data<float>(), t, inter, 2 * inter);
  weight_linear(act.data<float>(), t, lw.down, residual, lw.down_bias, /*accumulate=*/true);
}

Result<Tensor> DenseModel::forward(const ForwardBatch& batch, PagedKVCache& cache) const {
  const int64_t t = batch.num_tokens();
  const int64_t hidden = cfg_.hidden_size, vocab = cfg_.vocab_size;
  for (int64_t i = 0; i < t; ++i) {
    const int32_t id = batch.token_ids[static_cast<size_t>(i)];
    if (id < 0 || id >= vocab)
      return invalid_argument("token id " + std::to_string(id) + " at index " + std::to_string(i) +
                              " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
  }
  for (int64_t r : batch.logit_rows)
    if (r < 0 || r >= t)
      return invalid_argument("logit row " + std::to_string(r) + " is outside the batch of " + std::to_string(t) +
                              " tokens");
  const KVCacheShape& cs = cache.shape();
  const KVCacheShape want = kv_cache_shape(cs.num_blocks, cs.block_size);
  if (cs.num_layers != want.num_layers || cs.num_kv_heads != want.num_kv_heads || cs.head_dim != want.head_dim)
    return invalid_argument("KV cache shape does not match the model (layers, kv heads, head_dim)");
  if (t == 0) return Tensor::empty({0, vocab}, DType::kF32);

  Tensor residual = Tensor::empty({t, hidden}, DType::kF32);
  cpu::embedding(batch.token_ids.data(), t, w_.embed_tokens.raw(), w_.embed_tokens.dtype(), hidden,
                 residual.data<float>());
  Tensor normed = Tensor::empty({t, hidden}, DType::kF32);
  const float eps = static_cast<float>(cfg_.rms_norm_eps);

  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    const DenseLayerWeights& lw = w_.layers[static_cast<size_t>(l)];
    cpu::rms_norm(residual.data<float>(), lw.input_norm.data<float>(), normed.data<float>(), t, hidden, eps);
    if (cfg_.is_mla()) {
      mla_attention_forward(cfg_, lw, inv_freq_.data(), normed.data<float>(), batch, cache, l, residual.data<float>());
    } else {
      attention_block(l, normed.data<float>(), batch, cache, residual.data<float>());
    }
    cpu::rms_norm(residual.data<float>(), lw.post_attention_norm.data<float>(), normed.data<float>(), t, hidden,
                  eps);
    mlp_block(l, normed.data<float>(), t, residual.data<float>());
  }

  // Final norm and LM head only for the rows whose logits are wanted.
  const int64_t rows = static_cast<int64_t>(batch.logit_rows.size());
  Tensor picked = Tensor::empty({rows, hidden}, DType::kF32);
  for (int64_t i = 0; i < rows; ++i)
    std::memcpy(picked.data<float>() + i * hidden,
                residual.data<float>() + batch.logit_rows[static_cast<size_t>(i)] * hidden,
                static_cast<size_t>(hidden) * sizeof(float));
  cpu::rms_norm(picked.data<float>(), w_.final_norm.data<float>(), picked.data<float>(), rows, hidden, eps);
  Tensor logits = Tensor::empty({rows, vocab}, DType::kF32);
  weight_linear(picked.data<float>(), rows, w_.lm_head, logits.data<float>(), Tensor(), false);
  return logits;
}

Result<Tensor> DenseModel::forward(std::span<const int32_t> ids, SequenceKV& kv,
                                   std::span<const int64_t> logit_rows) const {
  const int64_t t = static_cast<int64_t>(ids.size());
  const int64_t start = kv.num_tokens();
  kv.reserve(start + t);
  ForwardBatch batch;
  batch.add_sequence(ids.data(), t, start, kv.block_table(), kv.cache().shape().block_size, false);
  batch.logit_rows.assign(logit_rows.begin(), logit_rows.end());
  LONGCTX_ASSIGN_OR_RETURN(Tensor logits, forward(batch, kv.cache()));
  kv.advance(t);
  return logits;
}

}  // namespace longctx
