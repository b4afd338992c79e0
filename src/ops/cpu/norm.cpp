#include "ops/cpu/norm.h"

#include <cmath>

namespace longctx::cpu {
namespace {

constexpr int kLanes = 8;  // independent double partial sums so the reduction vectorises

double sum_squares(const float* x, int64_t dim) {
  double acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= dim; i += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += static_cast<double>(x[i + l]) * x[i + l];
  for (; i < dim; ++i) acc[0] += static_cast<double>(x[i]) * x[i];
  double s = 0;
  for (int l = 0; l < kLanes; ++l) s += acc[l];
  return s;
}

// LlamaRMSNorm: x · rsqrt(mean(x²) + eps) · weight. The scale is formed in double and
// each product rounded once, so the result is the float64 reference rounded to fp32
// (to within an ulp).
void normalize_row(const float* x, const float* weight, float* out, int64_t dim, float eps) {
  const double inv = 1.0 / std::sqrt(sum_squares(x, dim) / static_cast<double>(dim) + eps);
  for (int64_t i = 0; i < dim; ++i) out[i] = static_cast<float>(x[i] * inv * weight[i]);
}

}  // namespace

void rms_norm(const float* x, const float* weight, float* out, int64_t rows, int64_t dim, float eps) {
#pragma omp parallel for schedule(static) if (rows * dim > 16384)
  for (int64_t r = 0; r < rows; ++r) normalize_row(x + r * dim, weight, out + r * dim, dim, eps);
}

void add_rms_norm(float* residual, const float* x, const float* weight, float* out, int64_t rows, int64_t dim,
                  float eps) {
#pragma omp parallel for schedule(static) if (rows * dim > 16384)
  for (int64_t r = 0; r < rows; ++r) {
    float* res = residual + r * dim;
    const float* xr = x + r * dim;
    for (int64_t i = 0; i < dim; ++i) res[i] += xr[i];  // whole row before out (out may alias x)
    normalize_row(res, weight, out + r * dim, dim, eps);
  }
}

}  // namespace longctx::cpu
