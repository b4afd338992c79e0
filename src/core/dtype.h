// Element types of tensors and their conversions. bf16/fp16 are stored as raw uint16
// bits; arithmetic happens in fp32 (fp32 accumulation everywhere).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "core/status.h"

namespace longctx {

enum class DType : uint8_t { kF32, kBF16, kF16, kI32, kI64 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // "f32", "bf16", ...
// Parses our names ("f32", "bf16", "f16", "i32", "i64"), safetensors names ("F32",
// "BF16", "F16", "I32", "I64") and torch names ("float32", "bfloat16", "float16").
Result<DType> parse_dtype(std::string_view name);

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even, as torch does; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Converts n elements between element types (float kinds and integer kinds).
void convert_elements(const void* src, DType src_type, void* dst, DType dst_type, size_t n);

}  // namespace longctx
