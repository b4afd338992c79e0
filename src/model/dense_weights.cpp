#include "model/dense_weights.h"

#include <cstring>
#include <string>

namespace longctx {
namespace {

// Concatenates matrices along rows into one owned tensor of `dtype`.
Tensor concat_rows(const std::vector<Tensor>& parts, DType dtype) {
  int64_t rows = 0;
  const int64_t cols = parts.front().size(-1);
  for (const Tensor& p : parts) rows += p.size(0);
  Tensor out = Tensor::empty({rows, cols}, dtype);
  int64_t r = 0;
  for (const Tensor& p : parts) {
    out.slice(0, r, r + p.size(0)).copy_from(p);
    r += p.size(0);
  }
  return out;
}

Tensor concat_vectors(const std::vector<Tensor>& parts) {
  int64_t n = 0;
  for (const Tensor& p : parts) n += p.numel();
  Tensor out = Tensor::empty({n}, DType::kF32);
  int64_t at = 0;
  for (const Tensor& p : parts) {
    out.slice(0, at, at + p.numel()).copy_from(p);
    at += p.numel();
  }
  return out;
}

// A matrix in the requested dtype: the zero-copy mmap view when nothing changes.
Tensor as_dtype(const Tensor& t, std::optional<DType> dtype) {
  if (!dtype || *dtype == t.dtype()) return t;
  return t.to(*dtype);
}

class Loader {
 public:
  Loader(const Checkpoint& ckpt, std::optional<DType> dtype) : ckpt_(ckpt), dtype_(dtype) {}

  Result<Tensor> matrix(const std::string& name, int64_t rows, int64_t cols) {
    LONGCTX_ASSIGN_OR_RETURN(Tensor t, ckpt_.get(name, {rows, cols}));
    LONGCTX_RETURN_IF_ERROR(check_float(name, t));
    return t;
  }
  Result<Tensor> vector_f32(const std::string& name, int64_t n) {
    LONGCTX_ASSIGN_OR_RETURN(Tensor t, ckpt_.get(name, {n}));
    LONGCTX_RETURN_IF_ERROR(check_float(name, t));
    return t.to(DType::kF32);
  }
  DType fused_dtype(const Tensor& first) const { return dtype_ ? *dtype_ : first.dtype(); }
  std::optional<DType> dtype() const { return dtype_; }

 private:
  Status check_float(const std::string& name, const Tensor& t) const {
    if (t.dtype() == DType::kF32 || t.dtype() == DType::kBF16 || t.dtype() == DType::kF16) return Status::ok();
    return invalid_argument("tensor '" + name + "' in " + ckpt_.describe() + " has dtype " +
                            dtype_name(t.dtype()) + ", expected a float type (f32, bf16 or f16)");
  }
  const Checkpoint& ckpt_;
  std::optional<DType> dtype_;
};

Status load_attention(Loader& ld, const ModelConfig& cfg, const std::string& p, DenseLayerWeights& lw,
                      std::optional<DType> dtype) {
  const int64_t hidden = cfg.hidden_size, d = cfg.head_dim, hq = cfg.num_heads, hkv = cfg.num_kv_heads;
    LONGCTX_ASSIGN_OR_RETURN(Tensor q, ld.matrix(p + "self_attn.q_proj.weight", hq * d, hidden));
    LONGCTX_ASSIGN_OR_RETURN(Tensor k, ld.matrix(p + "self_attn.k_proj.weight", hkv * d, hidden));
    LONGCTX_ASSIGN_OR_RETURN(Tensor v, ld.matrix(p + "self_attn.v_proj.weight", hkv * d, hidden));
    lw.qkv = concat_rows({q, k, v}, ld.fused_dtype(q));
    if (cfg.qkv_bias) {
      LONGCTX_ASSIGN_OR_RETURN(Tensor qb, ld.vector_f32(p + "self_attn.q_proj.bias", hq * d));
      LONGCTX_ASSIGN_OR_RETURN(Tensor kb, ld.vector_f32(p + "self_attn.k_proj.bias", hkv * d));
      LONGCTX_ASSIGN_OR_RETURN(Tensor vb, ld.vector_f32(p + "self_attn.v_proj.bias", hkv * d));
      lw.qkv_bias = concat_vectors({qb, kb, vb});
    }
    if (cfg.qk_norm) {
      LONGCTX_ASSIGN_OR_RETURN(lw.q_norm, ld.vector_f32(p + "self_attn.q_norm.weight", d));
      LONGCTX_ASSIGN_OR_RETURN(lw.k_norm, ld.vector_f32(p + "self_attn.k_norm.weight", d));
    }
    LONGCTX_ASSIGN_OR_RETURN(Tensor o, ld.matrix(p + "self_attn.o_proj.weight", hidden, hq * d));
    lw.o_proj = as_dtype(o, dtype);
    // transformers' Llama puts attention_bias on o_proj as well; Qwen2 biases q/k/v only.
    if (cfg.qkv_bias && cfg.arch == Architecture::kLlama) {
      LONGCTX_ASSIGN_OR_RETURN(lw.o_bias, ld.vector_f32(p + "self_attn.o_proj.bias", hidden));
    }
  return Status::ok();
}

// DeepSeek-V3 multi-head latent attention. kv_b_proj is split per head into the
// absorbed-form factors: W_uk[h]ᵀ (latent → nope key space, applied to the query) and
// W_uv[h] (latent → value), kept in fp32 (they are small: H · (nope + v) · kv_lora).
Status load_mla_attention(Loader& ld, const ModelConfig& cfg, const std::string& p, DenseLayerWeights& lw,
                          std::optional<DType> dtype) {
  const int64_t hidden = cfg.hidden_size, h = cfg.num_heads, nope = cfg.qk_nope_head_dim;
  const int64_t rope = cfg.qk_rope_head_dim, lora = cfg.kv_lora_rank, vd = cfg.v_head_dim;
  const int64_t qk = nope + rope;
  if (cfg.q_lora_rank > 0) {
    LONGCTX_ASSIGN_OR_RETURN(Tensor qa, ld.matrix(p + "self_attn.q_a_proj.weight", cfg.q_lora_rank, hidden));
    lw.q_a = as_dtype(qa, dtype);
    LONGCTX_ASSIGN_OR_RETURN(lw.q_a_norm, ld.vector_f32(p + "self_attn.q_a_layernorm.weight", cfg.q_lora_rank));
    LONGCTX_ASSIGN_OR_RETURN(Tensor qb, ld.matrix(p + "self_attn.q_b_proj.weight", h * qk, cfg.q_lora_rank));
    lw.q_b = as_dtype(qb, dtype);
  } else {
    LONGCTX_ASSIGN_OR_RETURN(Tensor q, ld.matrix(p + "self_attn.q_proj.weight", h * qk, hidden));
    lw.q_proj = as_dtype(q, dtype);
  }
  LONGCTX_ASSIGN_OR_RETURN(Tensor kva, ld.matrix(p + "self_attn.kv_a_proj_with_mqa.weight", lora + rope, hidden));
  lw.kv_a = as_dtype(kva, dtype);
  LONGCTX_ASSIGN_OR_RETURN(lw.kv_a_norm, ld.vector_f32(p + "self_attn.kv_a_layernorm.weight", lora));
  LONGCTX_ASSIGN_OR_RETURN(Tensor kvb, ld.matrix(p + "self_attn.kv_b_proj.weight", h * (nope + vd), lora));
  const Tensor b = as_dtype(kvb, dtype).to(DType::kF32);  // rounded as the other matrices are
  lw.k_up_t = Tensor::empty({h, lora, nope}, DType::kF32);
  lw.v_up = Tensor::empty({h, vd, lora}, DType::kF32);
  for (int64_t hh = 0; hh < h; ++hh) {
    const float* rows = b.data<float>() + hh * (nope + vd) * lora;  // [nope + vd, lora] for head hh
    for (int64_t i = 0; i < nope; ++i)
      for (int64_t c = 0; c < lora; ++c) lw.k_up_t.data<float>()[(hh * lora + c) * nope + i] = rows[i * lora + c];
    std::memcpy(lw.v_up.data<float>() + hh * vd * lora, rows + nope * lora, static_cast<size_t>(vd * lora) * sizeof(float));
  }
  LONGCTX_ASSIGN_OR_RETURN(Tensor o, ld.matrix(p + "self_attn.o_proj.weight", hidden, h * vd));
  lw.o_proj = as_dtype(o, dtype);
  return Status::ok();
}

}  // namespace

bool is_moe_layer(const ModelConfig& cfg, int64_t layer) {
  if (!cfg.is_moe()) return false;
  if (cfg.arch == Architecture::kMixtral) return true;
  if (cfg.arch == Architecture::kDeepseekV3) return layer >= cfg.first_k_dense_replace;
  for (int64_t l : cfg.mlp_only_layers)
    if (l == layer) return false;
  return (layer + 1) % cfg.decoder_sparse_step == 0;
}

Result<DenseWeights> load_dense_weights(const Checkpoint& ckpt, const ModelConfig& cfg,
                                        std::optional<DType> dtype) {
  Loader ld(ckpt, dtype);
  const int64_t hidden = cfg.hidden_size;
  const int64_t inter = cfg.intermediate_size, vocab = cfg.vocab_size;

  DenseWeights w;
  LONGCTX_ASSIGN_OR_RETURN(Tensor embed, ld.matrix("model.embed_tokens.weight", vocab, hidden));
  w.embed_tokens = as_dtype(embed, dtype);
  LONGCTX_ASSIGN_OR_RETURN(w.final_norm, ld.vector_f32("model.norm.weight", hidden));
  if (cfg.tie_word_embeddings && !ckpt.has("lm_head.weight")) {
    w.lm_head = w.embed_tokens;
  } else {
    LONGCTX_ASSIGN_OR_RETURN(Tensor head, ld.matrix("lm_head.weight", vocab, hidden));
    w.lm_head = as_dtype(head, dtype);
  }

  w.layers.resize(static_cast<size_t>(cfg.num_layers));
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    DenseLayerWeights& lw = w.layers[static_cast<size_t>(l)];
    LONGCTX_ASSIGN_OR_RETURN(lw.input_norm, ld.vector_f32(p + "input_layernorm.weight", hidden));
    LONGCTX_ASSIGN_OR_RETURN(lw.post_attention_norm, ld.vector_f32(p + "post_attention_layernorm.weight", hidden));
    if (cfg.is_mla()) {
      LONGCTX_RETURN_IF_ERROR(load_mla_attention(ld, cfg, p, lw, dtype));
    } else {
      LONGCTX_RETURN_IF_ERROR(load_attention(ld, cfg, p, lw, dtype));
    }
    if (is_moe_layer(cfg, l)) {
      const bool mixtral = cfg.arch == Architecture::kMixtral;
      const std::string moe = p + (mixtral ? "block_sparse_moe." : "mlp.");
      const int64_t mi = cfg.moe_intermediate_size;
      LONGCTX_ASSIGN_OR_RETURN(Tensor router, ld.matrix(moe + "gate.weight", cfg.num_experts, hidden));
      lw.router = router.to(DType::kF32);
      if (cfg.arch == Architecture::kDeepseekV3) {
        LONGCTX_ASSIGN_OR_RETURN(lw.router_bias, ld.vector_f32(moe + "gate.e_score_correction_bias", cfg.num_experts));
        if (cfg.n_shared_experts > 0) {
          const int64_t si = mi * cfg.n_shared_experts;
          const std::string x = moe + "shared_experts.";
          LONGCTX_ASSIGN_OR_RETURN(Tensor g, ld.matrix(x + "gate_proj.weight", si, hidden));
          LONGCTX_ASSIGN_OR_RETURN(Tensor u, ld.matrix(x + "up_proj.weight", si, hidden));
          LONGCTX_ASSIGN_OR_RETURN(Tensor dn, ld.matrix(x + "down_proj.weight", hidden, si));
          lw.shared_expert = {concat_rows({g, u}, ld.fused_dtype(g)), as_dtype(dn, dtype)};
        }
      }
      for (int64_t e = 0; e < cfg.num_experts; ++e) {
        const std::string x = moe + "experts." + std::to_string(e) + ".";
        LONGCTX_ASSIGN_OR_RETURN(Tensor g, ld.matrix(x + (mixtral ? "w1.weight" : "gate_proj.weight"), mi, hidden));
        LONGCTX_ASSIGN_OR_RETURN(Tensor u, ld.matrix(x + (mixtral ? "w3.weight" : "up_proj.weight"), mi, hidden));
        LONGCTX_ASSIGN_OR_RETURN(Tensor dn, ld.matrix(x + (mixtral ? "w2.weight" : "down_proj.weight"), hidden, mi));
        lw.experts.push_back({concat_rows({g, u}, ld.fused_dtype(g)), as_dtype(dn, dtype)});
      }
      continue;
    }
    LONGCTX_ASSIGN_OR_RETURN(Tensor gate, ld.matrix(p + "mlp.gate_proj.weight", inter, hidden));
    LONGCTX_ASSIGN_OR_RETURN(Tensor up, ld.matrix(p + "mlp.up_proj.weight", inter, hidden));
    lw.gate_up = concat_rows({gate, up}, ld.fused_dtype(gate));
    LONGCTX_ASSIGN_OR_RETURN(Tensor down, ld.matrix(p + "mlp.down_proj.weight", hidden, inter));
    lw.down = as_dtype(down, dtype);
    if (cfg.mlp_bias) {
      LONGCTX_ASSIGN_OR_RETURN(Tensor gb, ld.vector_f32(p + "mlp.gate_proj.bias", inter));
      LONGCTX_ASSIGN_OR_RETURN(Tensor ub, ld.vector_f32(p + "mlp.up_proj.bias", inter));
      lw.gate_up_bias = concat_vectors({gb, ub});
      LONGCTX_ASSIGN_OR_RETURN(lw.down_bias, ld.vector_f32(p + "mlp.down_proj.bias", hidden));
    }
  }
  return w;
}

}  // namespace longctx
