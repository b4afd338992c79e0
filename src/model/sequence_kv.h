// Contiguous KV cache of one sequence: per layer K and V as [capacity, Hkv, D] fp32.
// Used by single-sequence generation (`longctx generate`, the golden tests); the paged
// BlockPool of the engine is the serving path.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace longctx {

class SequenceKV {
 public:
  SequenceKV() = default;
  SequenceKV(int64_t num_layers, int64_t num_kv_heads, int64_t head_dim, int64_t capacity_tokens);

  int64_t num_tokens() const { return num_tokens_; }
  int64_t capacity() const { return capacity_; }
  int64_t token_stride() const { return num_kv_heads_ * head_dim_; }  // floats between tokens
  // Grows (keeping contents) so that `tokens` fit.
  void reserve(int64_t tokens);
  float* k(int64_t layer) { return k_[static_cast<size_t>(layer)].data<float>(); }
  float* v(int64_t layer) { return v_[static_cast<size_t>(layer)].data<float>(); }
  // Called by the model after a forward has written the new tokens' K/V.
  void advance(int64_t new_tokens) { num_tokens_ += new_tokens; }
  // Forget everything after `tokens` (e.g. to re-run a prompt).
  void truncate(int64_t tokens) { num_tokens_ = tokens < num_tokens_ ? tokens : num_tokens_; }

 private:
  int64_t num_layers_ = 0, num_kv_heads_ = 0, head_dim_ = 0;
  int64_t capacity_ = 0, num_tokens_ = 0;
  std::vector<Tensor> k_, v_;
};

}  // namespace longctx
