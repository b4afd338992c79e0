// Rotary position embedding. Two layouts exist in real checkpoints:
//  - rotate-half (Llama/Qwen in transformers): pairs (i, i + rot/2)
//  - interleaved (DeepSeek-V3 `rope_interleave`): pairs (2i, 2i + 1) on input
// inv_freq comes from the model config (rope types `default` and `llama3`, computed in
// model/rope_config); angles are position · inv_freq evaluated in double, cos/sin in
// double, each output rounded to fp32 once.
#pragma once

#include <cstdint>

namespace longctx::cpu {

enum class RopeStyle {
  // Llama/Qwen: for i < rot/2, with c = cos(pos·inv_freq[i]), s = sin(...):
  //   x'[i] = x[i]·c − x[i+rot/2]·s,   x'[i+rot/2] = x[i+rot/2]·c + x[i]·s.
  kRotateHalf,
  // DeepSeek-V3 in transformers (apply_rotary_pos_emb_interleave): the input pairs are
  // adjacent, (x[2i], x[2i+1]), and the op first de-interleaves them
  // (view(d/2, 2).transpose → [x0, x2, x4, …, x1, x3, x5, …]) and then applies
  // rotate-half. So the OUTPUT is in rotate-half order, not in place per pair:
  //   x'[i] = x[2i]·c − x[2i+1]·s,     x'[i+rot/2] = x[2i+1]·c + x[2i]·s.
  // This is not GPT-J's in-place rotation (which would write back to 2i, 2i+1); it
  // matches transformers' DeepSeek-V3 q_pe/k_pe element for element. q and k must both
  // go through it (q·k is then the same as for GPT-J, the layout of k in the cache differs).
  kInterleaved,
};

// Largest supported rotary_dim (per-token cos/sin and one head's rotary part live on the stack).
inline constexpr int64_t kMaxRotaryDim = 1024;

struct RopeParams {
  // [num_tokens, num_heads, head_dim], rotated in place. Only dims [0, rotary_dim) of each
  // head are touched. For a head laid out [nope | rope] (DeepSeek MLA), point x at the
  // first rope element: head_dim stays the head stride, and rotary_dim = the rope width.
  float* x = nullptr;
  int64_t num_tokens = 0, num_heads = 0, head_dim = 0;
  int64_t token_stride = 0;            // elements between tokens (0 = num_heads·head_dim)
  int64_t rotary_dim = 0;              // first rotary_dim dims rotate (0 = head_dim); even
  const int32_t* positions = nullptr;  // [num_tokens], any order (need not be contiguous)
  const double* inv_freq = nullptr;    // [rotary_dim / 2]
  RopeStyle style = RopeStyle::kRotateHalf;
};

// Throws std::invalid_argument if rotary_dim is odd, > head_dim or > kMaxRotaryDim.
void apply_rope(const RopeParams& p);

}  // namespace longctx::cpu
