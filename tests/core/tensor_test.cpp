#include "core/tensor.h"

#include <gtest/gtest.h>

#include <cmath>

namespace longctx {
namespace {

TEST(Tensor, ViewsShareMemoryAndKeepStrides) {
  Tensor t = Tensor::empty({2, 3, 4}, DType::kF32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = float(i);
  EXPECT_TRUE(t.is_contiguous());
  Tensor s = t.slice(1, 1, 3);  // [2, 2, 4]
  EXPECT_EQ(s.shape(), (Shape{2, 2, 4}));
  EXPECT_FALSE(s.is_contiguous());
  EXPECT_EQ(s.data<float>()[0], 4.0f);
  Tensor r = t.select(0, 1);  // [3, 4]
  EXPECT_EQ(r.data<float>()[0], 12.0f);
  Tensor tr = t.view({6, 4}).transpose(0, 1);  // [4, 6]
  EXPECT_EQ(tr.stride(0), 1);
  Tensor c = tr.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.data<float>()[1], 4.0f);  // element (0, 1) = original (1, 0)
  s.data<float>()[0] = -1.0f;            // writes through the view
  EXPECT_EQ(t.data<float>()[4], -1.0f);
}

TEST(Tensor, ViewInfersOneDimensionAndRejectsBadShapes) {
  Tensor t = Tensor::zeros({4, 6}, DType::kF32);
  EXPECT_EQ(t.view({-1, 3}).shape(), (Shape{8, 3}));
  EXPECT_THROW(t.view({5, 5}), std::invalid_argument);
  EXPECT_THROW(t.slice(0, 2, 9), std::out_of_range);
}

TEST(Tensor, ConvertsBetweenDtypes) {
  Tensor f = Tensor::from_vector(std::vector<float>{1.0f, -2.5f, 3.140625f, 65504.0f}, {4});
  for (DType dt : {DType::kBF16, DType::kF16}) {
    Tensor back = f.to(dt).to(DType::kF32);
    EXPECT_EQ(back.data<float>()[0], 1.0f);
    EXPECT_EQ(back.data<float>()[1], -2.5f);
  }
  EXPECT_EQ(f.to(DType::kF16).to(DType::kF32).data<float>()[3], 65504.0f);
  Tensor i = f.to(DType::kI64);
  EXPECT_EQ(i.data<int64_t>()[1], -2);
}

TEST(DType, Bf16RoundsToNearestEven) {
  // 1 + 2^-8 lies halfway between two bf16 values: ties go to the even mantissa (1.0).
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 1.0f / 256)), 1.0f);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 3.0f / 256)), 1.0f + 4.0f / 256);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

TEST(DType, F16RoundTripsRepresentableValuesAndSubnormals) {
  for (float v : {0.0f, 1.0f, -0.5f, 1024.0f, 6.103515625e-05f, 5.9604645e-08f, 0.333251953125f})
    EXPECT_EQ(f16_to_f32(f32_to_f16(v)), v) << v;
  EXPECT_TRUE(std::isinf(f16_to_f32(f32_to_f16(1e6f))));
}

TEST(DType, ParsesAllNamesAndRejectsUnknown) {
  EXPECT_EQ(parse_dtype("bfloat16").value(), DType::kBF16);
  EXPECT_EQ(parse_dtype("BF16").value(), DType::kBF16);
  EXPECT_EQ(parse_dtype("F32").value(), DType::kF32);
  auto bad = parse_dtype("float8");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("float8"), std::string::npos);
}

TEST(Status, ResultCarriesValueOrError) {
  Result<int> ok = 3;
  EXPECT_TRUE(ok.is_ok());
  EXPECT_EQ(*ok, 3);
  Result<int> err = invalid_argument("flag --x must be positive");
  EXPECT_FALSE(err.is_ok());
  EXPECT_EQ(err.status().to_string(), "InvalidArgument: flag --x must be positive");
  EXPECT_THROW(err.value(), StatusError);
}

}  // namespace
}  // namespace longctx
