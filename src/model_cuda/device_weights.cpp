#include "model_cuda/device_weights.h"

#include <cuda_runtime_api.h>

#include <cmath>
#include <string>

#include "model_cuda/cuda_check.h"
#include "ops/cuda/fill.h"

namespace longctx::cuda {
namespace {

bool tied(const ModelConfig& cfg, const DenseWeights* w) {
  // Host weights say it exactly (a tied checkpoint may still carry lm_head.weight).
  if (w) return w->lm_head.raw() == w->embed_tokens.raw();
  return cfg.tie_word_embeddings;
}

// Lays the weights out in an arena starting at `base` (null: only counts) and returns its
// size. Every tensor starts 256-byte aligned.
size_t assign(const ModelConfig& cfg, bool is_tied, unsigned char* base, DeviceWeights& dw) {
  size_t off = 0;
  auto take = [&](int64_t elems, size_t elem_bytes) {
    void* p = base ? base + off : nullptr;
    off += round_up_256(static_cast<size_t>(elems) * elem_bytes);
    return p;
  };
  auto bf = [&](int64_t n) { return static_cast<__nv_bfloat16*>(take(n, 2)); };
  auto f32 = [&](int64_t n) { return static_cast<float*>(take(n, 4)); };
  const int64_t h = cfg.hidden_size, d = cfg.head_dim, hq = cfg.num_heads, hkv = cfg.num_kv_heads;
  const int64_t qkv = (hq + 2 * hkv) * d, inter = cfg.intermediate_size, vocab = cfg.vocab_size;
  dw.embed_tokens = bf(vocab * h);
  dw.lm_head = is_tied ? dw.embed_tokens : bf(vocab * h);
  dw.final_norm = f32(h);
  dw.layers.assign(static_cast<size_t>(cfg.num_layers), {});
  for (DeviceLayerWeights& l : dw.layers) {
    l.input_norm = f32(h);
    l.qkv = bf(qkv * h);
    if (cfg.qkv_bias) l.qkv_bias = bf(qkv);
    if (cfg.qk_norm) l.q_norm = f32(d), l.k_norm = f32(d);
    l.o_proj = bf(h * hq * d);
    if (cfg.qkv_bias && cfg.arch == Architecture::kLlama) l.o_bias = f32(h);
    l.post_attention_norm = f32(h);
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

}  // namespace

Status check_supported(const ModelConfig& cfg) {
  if (cfg.is_moe() || cfg.is_mla())
    return invalid_argument(std::string("the CUDA backend runs dense Llama/Qwen2/Qwen3 models; ") +
                            architecture_name(cfg.arch) + " (MoE or MLA) is CPU-only so far");
  if (cfg.hidden_size % 8 != 0 || cfg.head_dim % 8 != 0)
    return invalid_argument("the CUDA backend needs hidden_size and head_dim multiples of 8 (got " +
                            std::to_string(cfg.hidden_size) + ", " + std::to_string(cfg.head_dim) + ")");
  return Status::ok();
}

size_t device_weight_bytes(const ModelConfig& cfg) {
  DeviceWeights dw;
  return assign(cfg, cfg.tie_word_embeddings, nullptr, dw);
}

Result<DeviceWeights> upload_dense_weights(const ModelConfig& cfg, const DenseWeights& w) {
  LONGCTX_RETURN_IF_ERROR(check_supported(cfg));
  DeviceWeights dw;
  const bool is_tied = tied(cfg, &w);
  const size_t bytes = assign(cfg, is_tied, nullptr, dw);
  LONGCTX_ASSIGN_OR_RETURN(dw.arena, DeviceBuffer::allocate(bytes, "the model weights"));
  assign(cfg, is_tied, dw.arena.as<unsigned char>(), dw);
  const int64_t h = cfg.hidden_size, d = cfg.head_dim, hq = cfg.num_heads, hkv = cfg.num_kv_heads;
  const int64_t qkv = (hq + 2 * hkv) * d, inter = cfg.intermediate_size, vocab = cfg.vocab_size;
  LONGCTX_RETURN_IF_ERROR(upload(dw.embed_tokens, w.embed_tokens, DType::kBF16, vocab * h, "embed_tokens"));
  if (!is_tied) LONGCTX_RETURN_IF_ERROR(upload(dw.lm_head, w.lm_head, DType::kBF16, vocab * h, "lm_head"));
  LONGCTX_RETURN_IF_ERROR(upload(dw.final_norm, w.final_norm, DType::kF32, h, "norm"));
  for (size_t i = 0; i < dw.layers.size(); ++i) {
    const DenseLayerWeights& lw = w.layers[i];
    DeviceLayerWeights& l = dw.layers[i];
    const std::string p = "layers." + std::to_string(i) + ".";
    LONGCTX_RETURN_IF_ERROR(upload(l.input_norm, lw.input_norm, DType::kF32, h, p + "input_layernorm"));
    LONGCTX_RETURN_IF_ERROR(upload(l.qkv, lw.qkv, DType::kBF16, qkv * h, p + "qkv"));
    LONGCTX_RETURN_IF_ERROR(upload(l.qkv_bias, lw.qkv_bias, DType::kBF16, qkv, p + "qkv_bias"));
    LONGCTX_RETURN_IF_ERROR(upload(l.q_norm, lw.q_norm, DType::kF32, d, p + "q_norm"));
    LONGCTX_RETURN_IF_ERROR(upload(l.k_norm, lw.k_norm, DType::kF32, d, p + "k_norm"));
    LONGCTX_RETURN_IF_ERROR(upload(l.o_proj, lw.o_proj, DType::kBF16, h * hq * d, p + "o_proj"));
    LONGCTX_RETURN_IF_ERROR(upload(l.o_bias, lw.o_bias, DType::kF32, h, p + "o_proj.bias"));
    LONGCTX_RETURN_IF_ERROR(upload(l.post_attention_norm, lw.post_attention_norm, DType::kF32, h,
                                   p + "post_attention_layernorm"));
    LONGCTX_RETURN_IF_ERROR(upload(l.gate_up, lw.gate_up, DType::kBF16, 2 * inter * h, p + "gate_up"));
    LONGCTX_RETURN_IF_ERROR(
        upload(l.gate_up_bias, lw.gate_up_bias, DType::kBF16, 2 * inter, p + "gate_up_bias"));
    LONGCTX_RETURN_IF_ERROR(upload(l.down, lw.down, DType::kBF16, h * inter, p + "down"));
    LONGCTX_RETURN_IF_ERROR(upload(l.down_bias, lw.down_bias, DType::kF32, h, p + "down_bias"));
  }
  return dw;
}

Result<DeviceWeights> random_dense_weights(const ModelConfig& cfg, uint64_t seed, float init_std) {
  LONGCTX_RETURN_IF_ERROR(check_supported(cfg));
  DeviceWeights dw;
  const size_t bytes = assign(cfg, cfg.tie_word_embeddings, nullptr, dw);
  LONGCTX_ASSIGN_OR_RETURN(dw.arena, DeviceBuffer::allocate(bytes, "the model weights"));
  // Zero everything (biases), then fill the matrices and set the norms to 1.
  LONGCTX_CUDA_OK(cudaMemset(dw.arena.get(), 0, bytes), "clearing the weights");
  assign(cfg, cfg.tie_word_embeddings, dw.arena.as<unsigned char>(), dw);
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
    LONGCTX_CUDA_OK(mat(l.gate_up, 2 * inter * h), "filling gate_up");
    LONGCTX_CUDA_OK(mat(l.down, h * inter), "filling down");
  }
  LONGCTX_CUDA_OK(cudaDeviceSynchronize(), "random weights");
  return dw;
}

}  // namespace longctx::cuda
