// y = x·Wᵀ (+ bias) for a weight held as a Tensor (any of f32/bf16/f16), the one bridge
// from model weights to the raw-pointer kernel cpu::linear.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "ops/cpu/linear.h"

namespace longctx {

// bias may be an empty Tensor; accumulate adds into y (a residual fused into the GEMM).
inline void weight_linear(const float* x, int64_t m, const Tensor& w, float* y, const Tensor& bias = Tensor(),
                          bool accumulate = false) {
  cpu::LinearParams p;
  p.x = x;
  p.w = w.raw();
  p.w_dtype = w.dtype();
  p.bias = bias.numel() > 0 && bias.raw() ? bias.data<float>() : nullptr;
  p.y = y;
  p.m = m;
  p.n = w.size(0);
  p.k = w.size(1);
  p.accumulate = accumulate;
  cpu::linear(p);
}

}  // namespace longctx
