#include "ops/cpu/sampling.h"

#include <cmath>
#include <vector>

namespace longctx::cpu {

int32_t argmax(const float* logits, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<int32_t>(best);
}

int32_t sample_with_temperature(const float* logits, int64_t n, float temperature, std::mt19937_64& rng) {
  if (temperature <= 0.0f) return argmax(logits, n);
  const float mx = logits[argmax(logits, n)];
  std::vector<double> cumulative(static_cast<size_t>(n));
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    total += std::exp(static_cast<double>(logits[i] - mx) / temperature);
    cumulative[static_cast<size_t>(i)] = total;
  }
  // 53 random bits → uniform in [0, total); the first bucket past it wins.
  const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53 * total;
  for (int64_t i = 0; i < n; ++i)
    if (u < cumulative[static_cast<size_t>(i)]) return static_cast<int32_t>(i);
  return static_cast<int32_t>(n - 1);
}

}  // namespace longctx::cpu
