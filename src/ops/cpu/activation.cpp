#include "ops/cpu/activation.h"

#include <cmath>

namespace longctx::cpu {

void silu_mul(const float* gate, const float* up, float* out, int64_t rows, int64_t n, int64_t in_stride) {
#pragma omp parallel for schedule(static) if (rows * n > 16384)
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = gate + r * in_stride;
    const float* u = up + r * in_stride;
    float* o = out + r * n;
    // g / (1 + e^-g): for g → -inf, e^-g overflows to inf and the quotient is -0, not NaN.
    for (int64_t j = 0; j < n; ++j) o[j] = g[j] / (1.0f + std::exp(-g[j])) * u[j];
  }
}

void softmax(float* x, int64_t rows, int64_t n) {
#pragma omp parallel for schedule(static) if (rows * n > 16384)
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * n;
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; ++j) mx = std::fmax(mx, row[j]);
    if (mx == -INFINITY) {  // every entry -inf (fully masked): uniform is meaningless; give zeros
      for (int64_t j = 0; j < n; ++j) row[j] = 0.0f;
      continue;
    }
    double sum = 0;  // double: vocab-sized rows sum ~1e5 terms
    for (int64_t j = 0; j < n; ++j) {
      row[j] = std::exp(row[j] - mx);
      sum += row[j];
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t j = 0; j < n; ++j) row[j] *= inv;
  }
}

}  // namespace longctx::cpu
