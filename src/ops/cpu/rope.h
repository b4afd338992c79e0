// Rotary position embedding. Two layouts exist in real checkpoints:
//  - rotate-half (Llama/Qwen in transformers): pairs (i, i + rot/2)
//  - interleaved (DeepSeek-V3 `rope_interleave`, GPT-J): pairs (2i, 2i + 1)
// inv_freq comes from the model config (rope types `default` and `llama3`, computed in
// model/rope_config); angles are position · inv_freq evaluated in double.
#pragma once

#include <cstdint>

namespace longctx::cpu {

enum class RopeStyle { kRotateHalf, kInterleaved };

struct RopeParams {
  float* x = nullptr;                // [num_tokens, num_heads, head_dim], rotated in place
  int64_t num_tokens = 0, num_heads = 0, head_dim = 0;
  int64_t token_stride = 0;          // elements between tokens (0 = num_heads·head_dim)
  int64_t rotary_dim = 0;            // first rotary_dim dims rotate (0 = head_dim)
  const int32_t* positions = nullptr;  // [num_tokens]
  const double* inv_freq = nullptr;    // [rotary_dim / 2]
  RopeStyle style = RopeStyle::kRotateHalf;
};

void apply_rope(const RopeParams& p);

}  // namespace longctx::cpu
