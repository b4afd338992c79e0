#include "ops/cpu/embedding.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace longctx::cpu {
namespace {

TEST(Embedding, GathersAndWidensEveryDtype) {
  const int64_t vocab = 50, dim = 37;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-3.0f, 3.0f);
  std::vector<float> f32(static_cast<size_t>(vocab * dim));
  for (auto& v : f32) v = u(rng);
  std::vector<uint16_t> bf16(f32.size()), f16(f32.size());
  for (size_t i = 0; i < f32.size(); ++i) {
    bf16[i] = f32_to_bf16(f32[i]);
    f16[i] = f32_to_f16(f32[i]);
  }
  const std::vector<int32_t> ids = {0, 49, 7, 7, 13};
  const int64_t t = static_cast<int64_t>(ids.size());
  std::vector<float> out(static_cast<size_t>(t * dim));
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    const void* table = dtype == DType::kF32    ? static_cast<const void*>(f32.data())
                        : dtype == DType::kBF16 ? static_cast<const void*>(bf16.data())
                                                : static_cast<const void*>(f16.data());
    embedding(ids.data(), t, table, dtype, dim, out.data());
    for (int64_t i = 0; i < t; ++i)
      for (int64_t c = 0; c < dim; ++c) {
        const size_t src = static_cast<size_t>(ids[i] * dim + c);
        const float want = dtype == DType::kF32    ? f32[src]
                           : dtype == DType::kBF16 ? bf16_to_f32(bf16[src])
                                                   : f16_to_f32(f16[src]);
        ASSERT_EQ(out[i * dim + c], want) << dtype_name(dtype) << " token " << i << " dim " << c;
      }
  }
}

}  // namespace
}  // namespace longctx::cpu
