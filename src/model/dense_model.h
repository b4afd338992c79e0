// DenseModel: the forward pass of the dense Llama family (Llama, Qwen2, Qwen3) on the
// CPU. One call runs a chunk of new tokens of one sequence over its cached prefix —
// a whole prompt, a prefill chunk, or a single decode token are the same call
// (STYLE.md §13: no prefill/decode modes).
#pragma once

#include <filesystem>
#include <optional>
#include <span>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "model/config.h"
#include "model/dense_weights.h"
#include "model/forward_batch.h"
#include "model/paged_kv_cache.h"
#include "model/safetensors.h"
#include "model/sequence_kv.h"

namespace longctx {

struct ModelLoadOptions {
  std::optional<DType> dtype;  // convert matrices on load (--dtype); unset keeps the file's
};

class DenseModel {
 public:
  // Reads DIR/config.json and DIR/model.safetensors (or its sharded index).
  static Result<DenseModel> load(const std::filesystem::path& dir, const ModelLoadOptions& opts = {});
  // Weights used in place stay valid after ckpt is gone: views keep the mapping alive.
  static Result<DenseModel> from_checkpoint(ModelConfig cfg, const Checkpoint& ckpt,
                                            const ModelLoadOptions& opts = {});

  const ModelConfig& config() const { return cfg_; }
  SequenceKV new_kv(int64_t capacity_tokens) const;
  // Shape of a paged cache for this model with the given blocks.
  KVCacheShape kv_cache_shape(int64_t num_blocks, int64_t block_size) const;
  // The dtype the layer matrices are kept in (the file's, or --dtype's).
  DType weight_dtype() const { return w_.layers.front().qkv.dtype(); }
  // The loaded weights (the engine shards them over a parallel layout's ranks).
  const DenseWeights& weights() const { return w_; }

  // Runs a batch of sequences' new tokens in one pass: GEMMs over all tokens at once,
  // paged attention per sequence over its cached prefix. Writes the new K/V into
  // `cache` and returns fp32 logits [batch.logit_rows.size(), vocab].
  // A token id outside [0, vocab) is an InvalidArgument naming its index.
  Result<Tensor> forward(const ForwardBatch& batch, PagedKVCache& cache) const;

  // One sequence: runs `ids` at positions kv.num_tokens() .. + ids.size() and returns
  // the logits of the given indices into ids.
  Result<Tensor> forward(std::span<const int32_t> ids, SequenceKV& kv, std::span<const int64_t> logit_rows) const;

 private:
  DenseModel(ModelConfig cfg, DenseWeights w);
  void attention_block(int64_t layer, const float* normed, const ForwardBatch& batch, PagedKVCache& cache,
                       float* residual) const;
  void mlp_block(int64_t layer, const float* normed, int64_t num_tokens, float* residual) const;

  ModelConfig cfg_;
  DenseWeights w_;
  std::vector<double> inv_freq_;
};

}  // namespace longctx
