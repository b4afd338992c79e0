// Cost models with hand-computable predictions for the policy and chunking tests.
#pragma once

#include "perf/cost_model.h"

namespace longctx::testing {

// 1 ms per new token, nothing else: prefill_time_s(0, P) = P / 1000 seconds.
class PerTokenCostModel final : public CostModel {
 public:
  double step_time_s(std::span<const ChunkWork> chunks) const override {
    double t = 0;
    for (const ChunkWork& c : chunks) t += 1e-3 * static_cast<double>(c.new_tokens);
    return t;
  }
};

inline ModelConfig llama_8b_config() {
  ModelConfig c;
  c.arch = Architecture::kLlama;
  c.hidden_size = 4096;
  c.num_layers = 32;
  c.num_heads = 32;
  c.num_kv_heads = 8;
  c.head_dim = 128;
  c.intermediate_size = 14336;
  c.vocab_size = 128256;
  c.max_position_embeddings = 131072;
  return c;
}

}  // namespace longctx::testing
