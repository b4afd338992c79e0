// RMSNorm as in transformers' LlamaRMSNorm: y = x / sqrt(mean(x²) + eps) · w, computed in
// fp32 with the mean accumulated in double (the references are float64 forwards).
#pragma once

#include <cstdint>

namespace longctx::cpu {

// out[r, :] = rmsnorm(x[r, :]) · weight; out may alias x. weight is fp32 [dim].
void rms_norm(const float* x, const float* weight, float* out, int64_t rows, int64_t dim, float eps);

// residual[r,:] += x[r,:]; out[r,:] = rmsnorm(residual[r,:]) · weight (the fused
// "add + norm" between sublayers; out may alias x).
void add_rms_norm(float* residual, const float* x, const float* weight, float* out, int64_t rows, int64_t dim,
                  float eps);

}  // namespace longctx::cpu
