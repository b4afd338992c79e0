#include "ops/cpu/rope.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace longctx::cpu {

void apply_rope(const RopeParams& p) {
  const int64_t rot = p.rotary_dim ? p.rotary_dim : p.head_dim;
  if (rot % 2 != 0 || rot > p.head_dim || rot > kMaxRotaryDim)
    throw std::invalid_argument("apply_rope: rotary_dim " + std::to_string(rot) +
                                " must be even, <= head_dim " + std::to_string(p.head_dim) +
                                " and <= " + std::to_string(kMaxRotaryDim));
  const int64_t half = rot / 2;
  const int64_t token_stride = p.token_stride ? p.token_stride : p.num_heads * p.head_dim;
#pragma omp parallel for schedule(static) if (p.num_tokens * p.num_heads * rot > 32768)
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    // cos/sin once per token, shared by all heads; double so that the angle of a
    // position ~1e5 keeps its fractional part (fp32 would lose ~1e-2 rad).
    double cs[kMaxRotaryDim / 2], sn[kMaxRotaryDim / 2];
    const double pos = p.positions[t];
    for (int64_t i = 0; i < half; ++i) {
      const double angle = pos * p.inv_freq[i];
      cs[i] = std::cos(angle);
      sn[i] = std::sin(angle);
    }
    for (int64_t h = 0; h < p.num_heads; ++h) {
      float* x = p.x + t * token_stride + h * p.head_dim;
      if (p.style == RopeStyle::kRotateHalf) {
        for (int64_t i = 0; i < half; ++i) {
          const double a = x[i], b = x[i + half];
          x[i] = static_cast<float>(a * cs[i] - b * sn[i]);
          x[i + half] = static_cast<float>(b * cs[i] + a * sn[i]);
        }
      } else {
        // De-interleave (pair i = (x[2i], x[2i+1])) then rotate-half, as transformers'
        // DeepSeek-V3 does: the pair lands at (i, i + half). Read all pairs first.
        float tmp[kMaxRotaryDim];
        for (int64_t j = 0; j < rot; ++j) tmp[j] = x[j];
        for (int64_t i = 0; i < half; ++i) {
          const double a = tmp[2 * i], b = tmp[2 * i + 1];
          x[i] = static_cast<float>(a * cs[i] - b * sn[i]);
          x[i + half] = static_cast<float>(b * cs[i] + a * sn[i]);
        }
      }
    }
  }
}

}  // namespace longctx::cpu
