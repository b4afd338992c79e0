// Internal to src/ops/cpu: widening a run of bf16/fp16/fp32 elements to fp32, the inner
// loop of the bf16-weight linear and of embedding lookup. Not part of the op surface.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/dtype.h"

#if defined(__F16C__)
#include <immintrin.h>
#endif

namespace longctx::cpu::detail {

// dst[i] = float(src[i]) for i < n. bf16 is a 16-bit shift (auto-vectorises); fp16 uses
// the F16C instruction where the build has it (-march=native on any x86 since 2012),
// otherwise the exact scalar conversion from core/dtype.
inline void widen_to_f32(const void* src, DType dtype, float* dst, int64_t n) {
  switch (dtype) {
    case DType::kF32: std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float)); return;
    case DType::kBF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::kF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      int64_t i = 0;
#if defined(__F16C__)
      for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
      }
#endif
      for (; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    default:
      // Integer tables are not weights; callers validate dtypes before reaching a kernel.
      for (int64_t i = 0; i < n; ++i) dst[i] = 0.0f;
      return;
  }
}

}  // namespace longctx::cpu::detail
