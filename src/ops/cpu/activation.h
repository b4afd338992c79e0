#pragma once

#include <cstdint>

namespace longctx::cpu {

// out[r, j] = silu(gate[r, j]) · up[r, j]; gate/up rows have stride `in_stride`
// (so a fused [gate | up] projection output can be read in place), out rows `n`.
void silu_mul(const float* gate, const float* up, float* out, int64_t rows, int64_t n, int64_t in_stride);

// Numerically stable softmax over each row of x[rows, n], in place (max subtracted, sum
// in double). A row that is entirely -inf becomes zeros.
void softmax(float* x, int64_t rows, int64_t n);

}  // namespace longctx::cpu
