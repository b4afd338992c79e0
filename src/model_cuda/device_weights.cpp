#include "model_cuda/device_weights.h"

#include <cuda_runtime_api.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "model_cuda/cuda_check.h"
#include "ops/cuda/fill.h"

namespace longctx::cuda {
namespace {

bool tied(const ModelConfig& cfg, const DenseWeights* w) {
  // Host weights say it exactly (a tied checkpoint may still carry lm_head.weight).
  if (w) return w->lm_head.raw() == w->embed_tokens.raw();
  return cfg.tie_word_embeddings;
}

// Lays the weights of a rank's share out in an arena starting at `base` (null: only
// counts) and returns its size. Every tensor starts 256-byte aligned.
size_t assign(const ModelConfig& cfg, const RankShape& rs, bool is_tied, unsigned char* base,
              DeviceWeights& dw) {
  size_t off = 0;
  auto take = [&](int64_t elems, size_t elem_bytes) {
    void* p = base ? base + off : nullptr;
    off += round_up_256(static_cast<size_t>(elems) * elem_bytes);
    return p;
  };
  auto bf = [&](int64_t n) { return static_cast<__nv_bfloat16*>(take(n, 2)); };
  auto f32 = [&](int64_t n) { return static_cast<float*>(take(n, 4)); };
  const int64_t h = cfg.hidden_size, d = cfg.head_dim, hq = rs.num_q_heads, hkv = rs.num_kv_heads;
  const int64_t qkv = (hq + 2 * hkv) * d, inter = rs.intermediate, vocab = cfg.vocab_size;
  // Tied: one matrix serves both when this rank has the embedding and the whole LM head.
  const bool share = is_tied && rs.embed && rs.head && rs.vocab_rows == vocab;
  dw.embed_tokens = rs.embed ? bf(vocab * h) : nullptr;
  dw.lm_head = !rs.head ? nullptr : share ? dw.embed_tokens : bf(rs.vocab_rows * h);
  dw.final_norm = rs.head ? f32(h) : nullptr;
  dw.layers.assign(static_cast<size_t>(rs.num_layers), {});
  const int64_t ne = cfg.num_experts, mi = cfg.moe_intermediate_size;
  for (size_t li = 0; li < dw.layers.size(); ++li) {
    DeviceLayerWeights& l = dw.layers[li];
    l.input_norm = f32(h);
    l.qkv = bf(qkv * h);
    if (cfg.qkv_bias) l.qkv_bias = bf(qkv);
    if (cfg.qk_norm) l.q_norm = f32(d), l.k_norm = f32(d);
    l.o_proj = bf(h * hq * d);
    if (cfg.qkv_bias && cfg.arch == Architecture::kLlama) l.o_bias = f32(h);
    l.post_attention_norm = f32(h);
    if (is_moe_layer(cfg, rs.first_layer + static_cast<int64_t>(li))) {
      l.moe.router = f32(ne * h);
      l.moe.gate_up = bf(ne * 2 * mi * h);
      l.moe.down = bf(ne * h * mi);
      continue;
    }
    l.gate_up = bf(2 * inter * h);
    if (cfg.mlp_bias) l.gate_up_bias = bf(2 * inter), l.down_bias = f32(h);
    l.down = bf(h * inter);
  }
  return off;
}

Status upload(void* dst, const Tensor& t, DType want, int64_t expect_numel, const std::string& name) {
  if (!dst) return Status::ok();
  if (!t.defined() || t.numel() != expect_numel)
    return invalid_argument("weight " + name + " has " + std::to_string(t.defined() ? t.numel() : 0) +
                            " elements, expected " + std::to_string(expect_numel));
  const Tensor c = t.dtype() == want ? t : t.to(want);
  LONGCTX_CUDA_OK(cudaMemcpy(dst, c.raw(), c.nbytes(), cudaMemcpyHostToDevice), "uploading weight " + name);
  return Status::ok();
}

// Rows [r0, r1) of `t`, each `width` elements (1-D: width 1), at row `at` of dst.
Status upload_rows(void* dst, int64_t at, const Tensor& t, DType want, int64_t r0, int64_t r1, int64_t width,
                   const std::string& name) {
  if (!dst || r0 == r1) return Status::ok();
  if (!t.defined() || t.size(0) < r1 || t.numel() != t.size(0) * width)
    return invalid_argument("weight " + name + " is not [>= " + std::to_string(r1) + ", " +
                            std::to_string(width) + "] (" + std::to_string(t.defined() ? t.numel() : 0) +
                            " elements)");
  const Tensor c = t.slice(0, r0, r1).to(want);
  auto* p = static_cast<unsigned char*>(dst) + static_cast<size_t>(at * width) * dtype_size(want);
  LONGCTX_CUDA_OK(cudaMemcpy(p, c.raw(), c.nbytes(), cudaMemcpyHostToDevice), "uploading weight " + name);
  return Status::ok();
}

// Columns [c0, c1) of the 2-D `t` of `rows` rows.
Status upload_columns(void* dst, const Tensor& t, DType want, int64_t rows, int64_t c0, int64_t c1,
                      const std::string& name) {
  if (!dst) return Status::ok();
  if (!t.defined() || t.shape().size() != 2 || t.size(0) != rows || t.size(1) < c1)
    return invalid_argument("weight " + name + " is not [" + std::to_string(rows) +
                            ", >= " + std::to_string(c1) + "]");
  const Tensor c = t.slice(1, c0, c1).contiguous().to(want);
  LONGCTX_CUDA_OK(cudaMemcpy(dst, c.raw(), c.nbytes(), cudaMemcpyHostToDevice), "uploading weight " + name);
  return Status::ok();
}

}  // namespace

Status check_supported(const ModelConfig& cfg) {
  if (cfg.is_mla())
    return invalid_argument(std::string("the CUDA backend runs Llama/Qwen2/Qwen3 and Mixtral/Qwen3-MoE models; ") +
                            architecture_name(cfg.arch) + " (MLA) is CPU-only so far");
  if (cfg.is_moe() && (cfg.scoring_func == "sigmoid" || cfg.n_group > 1 || cfg.n_shared_experts > 0))
    return invalid_argument(std::string("the CUDA backend's MoE layers route by softmax without shared experts "
                                        "(Mixtral, Qwen3-MoE); ") +
                            architecture_name(cfg.arch) + "'s routing is CPU-only so far");
  if (cfg.hidden_size % 8 != 0 || cfg.head_dim % 8 != 0)
    return invalid_argument("the CUDA backend needs hidden_size and head_dim multiples of 8 (got " +
                            std::to_string(cfg.hidden_size) + ", " + std::to_string(cfg.head_dim) + ")");
  return Status::ok();
}

RankShape full_rank_shape(const ModelConfig& cfg) {
  RankShape rs;
  rs.num_q_heads = cfg.num_heads, rs.num_kv_heads = cfg.num_kv_heads, rs.intermediate = cfg.intermediate_size;
  rs.num_layers = cfg.num_layers;
  rs.vocab_rows = cfg.vocab_size;
  return rs;
}

RankShape rank_shape(const ModelConfig& cfg, const ParallelLayout& layout, int rank) {
  const ParallelConfig& pc = layout.config();
  const RankCoords c = layout.coords(rank);
  RankShape rs;
  rs.num_q_heads = layout.num_local_q_heads();
  rs.first_q_head = layout.first_q_head(c.tp);
  rs.num_kv_heads = layout.num_local_kv_heads();
  rs.first_kv_head = layout.first_kv_head(c.tp);
  rs.intermediate = cfg.intermediate_size / pc.tp;
  rs.first_column = c.tp * rs.intermediate;
  rs.first_layer = layout.first_layer(c.pp);
  rs.num_layers = layout.end_layer(c.pp) - rs.first_layer;
  rs.embed = c.pp == 0;
  rs.head = c.pp == pc.pp - 1;
  // The LM head as ShardedDenseModel: split over tp when tp divides the vocabulary.
  const bool split = cfg.vocab_size % pc.tp == 0;
  rs.vocab_rows = split ? cfg.vocab_size / pc.tp : cfg.vocab_size;
  rs.first_vocab_row = split ? c.tp * rs.vocab_rows : 0;
  return rs;
}

size_t device_weight_bytes(const ModelConfig& cfg) { return device_weight_bytes(cfg, full_rank_shape(cfg)); }

size_t device_weight_bytes(const ModelConfig& cfg, const RankShape& shape) {
  DeviceWeights dw;
  return assign(cfg, shape, cfg.tie_word_embeddings, nullptr, dw);
}

Result<DeviceWeights> upload_dense_weights(const ModelConfig& cfg, const DenseWeights& w) {
  return upload_dense_weights(cfg, w, full_rank_shape(cfg));
}

Result<DeviceWeights> upload_dense_weights(const ModelConfig& cfg, const DenseWeights& w,
                                           const RankShape& rs) {
  LONGCTX_RETURN_IF_ERROR(check_supported(cfg));
  DeviceWeights dw;
  const bool is_tied = tied(cfg, &w);
  const size_t bytes = assign(cfg, rs, is_tied, nullptr, dw);
  LONGCTX_ASSIGN_OR_RETURN(dw.arena, DeviceBuffer::allocate(bytes, "the model weights"));
  assign(cfg, rs, is_tied, dw.arena.as<unsigned char>(), dw);
  const int64_t h = cfg.hidden_size, d = cfg.head_dim, hq = cfg.num_heads, hkv = cfg.num_kv_heads;
  const int64_t inter = cfg.intermediate_size, vocab = cfg.vocab_size;
  if (static_cast<int64_t>(w.layers.size()) < rs.first_layer + rs.num_layers)
    return invalid_argument("the host weights have " + std::to_string(w.layers.size()) +
                            " layers, expected " + std::to_string(rs.first_layer + rs.num_layers));
  // This rank's q, k, v rows of the fused q|k|v (and its bias), packed q|k|v again.
  const int64_t lq = rs.num_q_heads * d, lkv = rs.num_kv_heads * d;
  const int64_t q0 = rs.first_q_head * d, k0 = hq * d + rs.first_kv_head * d,
                v0 = (hq + hkv) * d + rs.first_kv_head * d;
  const int64_t li = rs.intermediate, c0 = rs.first_column;
  LONGCTX_RETURN_IF_ERROR(upload(dw.embed_tokens, w.embed_tokens, DType::kBF16, vocab * h, "embed_tokens"));
  if (dw.lm_head && dw.lm_head != dw.embed_tokens)
    LONGCTX_RETURN_IF_ERROR(upload_rows(dw.lm_head, 0, w.lm_head, DType::kBF16, rs.first_vocab_row,
                                        rs.first_vocab_row + rs.vocab_rows, h, "lm_head"));
  LONGCTX_RETURN_IF_ERROR(upload(dw.final_norm, w.final_norm, DType::kF32, h, "norm"));
  for (size_t i = 0; i < dw.layers.size(); ++i) {
    const DenseLayerWeights& lw = w.layers[static_cast<size_t>(rs.first_layer) + i];
    DeviceLayerWeights& l = dw.layers[i];
    const std::string p = "layers." + std::to_string(rs.first_layer + static_cast<int64_t>(i)) + ".";
    LONGCTX_RETURN_IF_ERROR(upload(l.input_norm, lw.input_norm, DType::kF32, h, p + "input_layernorm"));
    LONGCTX_RETURN_IF_ERROR(upload_rows(l.qkv, 0, lw.qkv, DType::kBF16, q0, q0 + lq, h, p + "qkv"));
    LONGCTX_RETURN_IF_ERROR(upload_rows(l.qkv, lq, lw.qkv, DType::kBF16, k0, k0 + lkv, h, p + "qkv"));
    LONGCTX_RETURN_IF_ERROR(upload_rows(l.qkv, lq + lkv, lw.qkv, DType::kBF16, v0, v0 + lkv, h, p + "qkv"));
    LONGCTX_RETURN_IF_ERROR(
        upload_rows(l.qkv_bias, 0, lw.qkv_bias, DType::kBF16, q0, q0 + lq, 1, p + "qkv_bias"));
    LONGCTX_RETURN_IF_ERROR(
        upload_rows(l.qkv_bias, lq, lw.qkv_bias, DType::kBF16, k0, k0 + lkv, 1, p + "qkv_bias"));
    LONGCTX_RETURN_IF_ERROR(
        upload_rows(l.qkv_bias, lq + lkv, lw.qkv_bias, DType::kBF16, v0, v0 + lkv, 1, p + "qkv_bias"));
    LONGCTX_RETURN_IF_ERROR(upload(l.q_norm, lw.q_norm, DType::kF32, d, p + "q_norm"));
    LONGCTX_RETURN_IF_ERROR(upload(l.k_norm, lw.k_norm, DType::kF32, d, p + "k_norm"));
    LONGCTX_RETURN_IF_ERROR(upload_columns(l.o_proj, lw.o_proj, DType::kBF16, h, q0, q0 + lq, p + "o_proj"));
    // Biases after an all-reduce are added once: the full vector, on every rank, after the sum.
    LONGCTX_RETURN_IF_ERROR(upload(l.o_bias, lw.o_bias, DType::kF32, h, p + "o_proj.bias"));
    LONGCTX_RETURN_IF_ERROR(upload(l.post_attention_norm, lw.post_attention_norm, DType::kF32, h,
                                   p + "post_attention_layernorm"));
    if (l.moe.router) {
      // Routed (single rank only: the rank checks refuse TP/PP/EP splits of MoE models).
      const int64_t ne = cfg.num_experts, mi = cfg.moe_intermediate_size;
      if (static_cast<int64_t>(lw.experts.size()) != ne)
        return invalid_argument("weight " + p + "experts: " + std::to_string(lw.experts.size()) +
                                " experts, expected " + std::to_string(ne));
      LONGCTX_RETURN_IF_ERROR(upload(l.moe.router, lw.router, DType::kF32, ne * h, p + "router"));
      for (int64_t e = 0; e < ne; ++e) {
        const ExpertWeights& ew = lw.experts[static_cast<size_t>(e)];
        const std::string x = p + "experts." + std::to_string(e) + ".";
        LONGCTX_RETURN_IF_ERROR(
            upload(l.moe.gate_up + e * 2 * mi * h, ew.gate_up, DType::kBF16, 2 * mi * h, x + "gate_up"));
        LONGCTX_RETURN_IF_ERROR(upload(l.moe.down + e * h * mi, ew.down, DType::kBF16, h * mi, x + "down"));
      }
      continue;
    }
    LONGCTX_RETURN_IF_ERROR(
        upload_rows(l.gate_up, 0, lw.gate_up, DType::kBF16, c0, c0 + li, h, p + "gate_up"));
    LONGCTX_RETURN_IF_ERROR(
        upload_rows(l.gate_up, li, lw.gate_up, DType::kBF16, inter + c0, inter + c0 + li, h, p + "gate_up"));
    LONGCTX_RETURN_IF_ERROR(
        upload_rows(l.gate_up_bias, 0, lw.gate_up_bias, DType::kBF16, c0, c0 + li, 1, p + "gate_up_bias"));
    LONGCTX_RETURN_IF_ERROR(upload_rows(l.gate_up_bias, li, lw.gate_up_bias, DType::kBF16, inter + c0,
                                        inter + c0 + li, 1, p + "gate_up_bias"));
    LONGCTX_RETURN_IF_ERROR(upload_columns(l.down, lw.down, DType::kBF16, h, c0, c0 + li, p + "down"));
    LONGCTX_RETURN_IF_ERROR(upload(l.down_bias, lw.down_bias, DType::kF32, h, p + "down_bias"));
  }
  return dw;
}

Result<DeviceWeights> random_dense_weights(const ModelConfig& cfg, uint64_t seed, float init_std) {
  LONGCTX_RETURN_IF_ERROR(check_supported(cfg));
  DeviceWeights dw;
  const RankShape rs = full_rank_shape(cfg);
  const size_t bytes = assign(cfg, rs, cfg.tie_word_embeddings, nullptr, dw);
  LONGCTX_ASSIGN_OR_RETURN(dw.arena, DeviceBuffer::allocate(bytes, "the model weights"));
  // Zero everything (biases), then fill the matrices and set the norms to 1.
  LONGCTX_CUDA_OK(cudaMemset(dw.arena.get(), 0, bytes), "clearing the weights");
  assign(cfg, rs, cfg.tie_word_embeddings, dw.arena.as<unsigned char>(), dw);
  const int64_t h = cfg.hidden_size, d = cfg.head_dim, hq = cfg.num_heads, hkv = cfg.num_kv_heads;
  const int64_t qkv = (hq + 2 * hkv) * d, inter = cfg.intermediate_size, vocab = cfg.vocab_size;
  const float bound = init_std * std::sqrt(3.0f);  // uniform[-b, b) has std b/√3
  uint64_t s = seed;
  auto mat = [&](__nv_bfloat16* p, int64_t n) { return fill_uniform_bf16(p, n, ++s, bound, nullptr); };
  LONGCTX_CUDA_OK(mat(dw.embed_tokens, vocab * h), "filling embed_tokens");
  if (dw.lm_head != dw.embed_tokens) LONGCTX_CUDA_OK(mat(dw.lm_head, vocab * h), "filling lm_head");
  LONGCTX_CUDA_OK(fill_f32(dw.final_norm, h, 1.0f, nullptr), "filling norm");
  for (DeviceLayerWeights& l : dw.layers) {
    LONGCTX_CUDA_OK(fill_f32(l.input_norm, h, 1.0f, nullptr), "filling a norm");
    LONGCTX_CUDA_OK(fill_f32(l.post_attention_norm, h, 1.0f, nullptr), "filling a norm");
    if (l.q_norm) LONGCTX_CUDA_OK(fill_f32(l.q_norm, d, 1.0f, nullptr), "filling q_norm");
    if (l.k_norm) LONGCTX_CUDA_OK(fill_f32(l.k_norm, d, 1.0f, nullptr), "filling k_norm");
    LONGCTX_CUDA_OK(mat(l.qkv, qkv * h), "filling qkv");
    LONGCTX_CUDA_OK(mat(l.o_proj, h * hq * d), "filling o_proj");
    if (l.moe.router) {
      const int64_t ne = cfg.num_experts, mi = cfg.moe_intermediate_size;
      // The fp32 router from the host (uniform too, so tokens spread over the experts).
      std::mt19937_64 rng(++s);
      std::uniform_real_distribution<float> u(-bound, bound);
      std::vector<float> router(static_cast<size_t>(ne * h));
      for (float& v : router) v = u(rng);
      LONGCTX_CUDA_OK(cudaMemcpy(l.moe.router, router.data(), router.size() * 4, cudaMemcpyHostToDevice),
                      "uploading a random router");
      LONGCTX_CUDA_OK(mat(l.moe.gate_up, ne * 2 * mi * h), "filling expert gate_up");
      LONGCTX_CUDA_OK(mat(l.moe.down, ne * h * mi), "filling expert down");
      continue;
    }
    LONGCTX_CUDA_OK(mat(l.gate_up, 2 * inter * h), "filling gate_up");
    LONGCTX_CUDA_OK(mat(l.down, h * inter), "filling down");
  }
  LONGCTX_CUDA_OK(cudaDeviceSynchronize(), "random weights");
  return dw;
}

}  // namespace longctx::cuda
