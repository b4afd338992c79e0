#include "model/dense_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "ops/cpu/activation.h"
#include "ops/cpu/attention.h"
#include "ops/cpu/embedding.h"
#include "ops/cpu/linear.h"
#include "ops/cpu/norm.h"
#include "ops/cpu/rope.h"

namespace longctx {
namespace {

void run_linear(const float* x, int64_t m, const Tensor& w, const Tensor& bias, float* y, bool accumulate) {
  cpu::LinearParams p;
  p.x = x;
  p.w = w.raw();
  p.w_dtype = w.dtype();
  p.bias = bias.numel() > 0 && bias.raw() ? bias.data<float>() : nullptr;
  p.y = y;
  p.m = m;
  p.n = w.size(0);
  p.k = w.size(1);
  p.accumulate = accumulate;
  cpu::linear(p);
}

}  // namespace

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
  return SequenceKV(cfg_.num_layers, cfg_.num_kv_heads, cfg_.head_dim, capacity_tokens);
}

void DenseModel::attention_block(int64_t layer, const float* normed, int64_t t, const int32_t* positions,
                                 SequenceKV& kv, float* residual) const {
  const DenseLayerWeights& lw = w_.layers[static_cast<size_t>(layer)];
  const int64_t d = cfg_.head_dim, hq = cfg_.num_heads, hkv = cfg_.num_kv_heads;
  const int64_t q_width = hq * d, kv_width = hkv * d, qkv_width = q_width + 2 * kv_width;

  Tensor qkv = Tensor::empty({t, qkv_width}, DType::kF32);
  run_linear(normed, t, lw.qkv, lw.qkv_bias, qkv.data<float>(), false);
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
  rp.positions = positions;
  rp.inv_freq = inv_freq_.data();
  rp.style = cpu::RopeStyle::kRotateHalf;
  rp.x = q;
  rp.num_heads = hq;
  cpu::apply_rope(rp);
  rp.x = k;
  rp.num_heads = hkv;
  cpu::apply_rope(rp);

  // Append this chunk's K/V after the cached prefix.
  const int64_t start = kv.num_tokens();
  float* kc = kv.k(layer);
  float* vc = kv.v(layer);
  for (int64_t i = 0; i < t; ++i) {
    std::memcpy(kc + (start + i) * kv_width, k + i * qkv_width, static_cast<size_t>(kv_width) * sizeof(float));
    std::memcpy(vc + (start + i) * kv_width, v + i * qkv_width, static_cast<size_t>(kv_width) * sizeof(float));
  }

  Tensor attn = Tensor::empty({t, q_width}, DType::kF32);
  Tensor lse = Tensor::empty({t, hq}, DType::kF32);
  cpu::AttentionParams ap;
  ap.q = q;
  ap.k = kc;
  ap.v = vc;
  ap.out = attn.data<float>();
  ap.lse = lse.data<float>();
  ap.num_q = t;
  ap.num_kv = start + t;
  ap.num_q_heads = hq;
  ap.num_kv_heads = hkv;
  ap.head_dim = d;
  ap.q_stride = qkv_width;
  ap.kv_stride = kv_width;
  ap.causal = true;
  ap.q_pos0 = start;
  ap.kv_pos0 = 0;
  cpu::attention(ap);

  run_linear(attn.data<float>(), t, lw.o_proj, lw.o_bias, residual, /*accumulate=*/true);
}

void DenseModel::mlp_block(int64_t layer, const float* normed, int64_t t, float* residual) const {
  const DenseLayerWeights& lw = w_.layers[static_cast<size_t>(layer)];
  const int64_t inter = cfg_.intermediate_size;
  Tensor gate_up = Tensor::empty({t, 2 * inter}, DType::kF32);
  run_linear(normed, t, lw.gate_up, lw.gate_up_bias, gate_up.data<float>(), false);
  Tensor act = Tensor::empty({t, inter}, DType::kF32);
  cpu::silu_mul(gate_up.data<float>(), gate_up.data<float>() + inter, act.data<float>(), t, inter, 2 * inter);
  run_linear(act.data<float>(), t, lw.down, lw.down_bias, residual, /*accumulate=*/true);
}

Result<Tensor> DenseModel::forward(std::span<const int32_t> ids, SequenceKV& kv,
                                   std::span<const int64_t> logit_rows) const {
  const int64_t t = static_cast<int64_t>(ids.size());
  const int64_t hidden = cfg_.hidden_size, vocab = cfg_.vocab_size;
  for (int64_t i = 0; i < t; ++i) {
    if (ids[static_cast<size_t>(i)] < 0 || ids[static_cast<size_t>(i)] >= vocab)
      return invalid_argument("token id " + std::to_string(ids[static_cast<size_t>(i)]) + " at index " +
                              std::to_string(i) + " is outside the vocabulary [0, " + std::to_string(vocab) +
                              ")");
  }
  for (int64_t r : logit_rows)
    if (r < 0 || r >= t)
      return invalid_argument("logit row " + std::to_string(r) + " is outside the chunk of " + std::to_string(t) +
                              " tokens");
  if (t == 0) return Tensor::empty({0, vocab}, DType::kF32);

  const int64_t start = kv.num_tokens();
  kv.reserve(start + t);
  std::vector<int32_t> positions(static_cast<size_t>(t));
  for (int64_t i = 0; i < t; ++i) positions[static_cast<size_t>(i)] = static_cast<int32_t>(start + i);

  Tensor residual = Tensor::empty({t, hidden}, DType::kF32);
  cpu::embedding(ids.data(), t, w_.embed_tokens.raw(), w_.embed_tokens.dtype(), hidden, residual.data<float>());
  Tensor normed = Tensor::empty({t, hidden}, DType::kF32);
  const float eps = static_cast<float>(cfg_.rms_norm_eps);

  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    const DenseLayerWeights& lw = w_.layers[static_cast<size_t>(l)];
    cpu::rms_norm(residual.data<float>(), lw.input_norm.data<float>(), normed.data<float>(), t, hidden, eps);
    attention_block(l, normed.data<float>(), t, positions.data(), kv, residual.data<float>());
    cpu::rms_norm(residual.data<float>(), lw.post_attention_norm.data<float>(), normed.data<float>(), t, hidden,
                  eps);
    mlp_block(l, normed.data<float>(), t, residual.data<float>());
  }
  kv.advance(t);

  // Final norm and LM head only for the rows whose logits are wanted.
  const int64_t rows = static_cast<int64_t>(logit_rows.size());
  Tensor picked = Tensor::empty({rows, hidden}, DType::kF32);
  for (int64_t i = 0; i < rows; ++i)
    std::memcpy(picked.data<float>() + i * hidden, residual.data<float>() + logit_rows[static_cast<size_t>(i)] * hidden,
                static_cast<size_t>(hidden) * sizeof(float));
  cpu::rms_norm(picked.data<float>(), w_.final_norm.data<float>(), picked.data<float>(), rows, hidden, eps);
  Tensor logits = Tensor::empty({rows, vocab}, DType::kF32);
  run_linear(picked.data<float>(), rows, w_.lm_head, Tensor(), logits.data<float>(), false);
  return logits;
}

}  // namespace longctx
