#include "model/sequence_kv.h"

#include <algorithm>
#include <cstring>

namespace longctx {

SequenceKV::SequenceKV(int64_t num_layers, int64_t num_kv_heads, int64_t head_dim, int64_t capacity_tokens)
    : num_layers_(num_layers), num_kv_heads_(num_kv_heads), head_dim_(head_dim) {
  k_.resize(static_cast<size_t>(num_layers));
  v_.resize(static_cast<size_t>(num_layers));
  reserve(std::max<int64_t>(capacity_tokens, 1));
}

void SequenceKV::reserve(int64_t tokens) {
  if (tokens <= capacity_) return;
  // Doubling keeps appends amortised O(1) per token.
  const int64_t cap = std::max(tokens, capacity_ * 2);
  for (int64_t l = 0; l < num_layers_; ++l) {
    for (auto* store : {&k_, &v_}) {
      Tensor grown = Tensor::empty({cap, num_kv_heads_, head_dim_}, DType::kF32);
      Tensor& old = (*store)[static_cast<size_t>(l)];
      if (old.numel() > 0)
        std::memcpy(grown.raw(), old.raw(), static_cast<size_t>(num_tokens_ * token_stride()) * sizeof(float));
      old = grown;
    }
  }
  capacity_ = cap;
}

}  // namespace longctx
