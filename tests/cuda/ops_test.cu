// GEMM, norms, SiLU·mul, embedding and argmax against float64 references computed from the
// same bf16-rounded inputs. Bounds (‖out − ref‖/‖ref‖): bf16 outputs 1e-2 (one rounding to
// bf16 is ≤ 2⁻⁹ ≈ 2e-3 relative per element; the bound leaves room for fp32 sums), fp32
// outputs of fp32 accumulations 1e-4.
#include <cublasLt.h>

#include "cuda/test_util.h"
#include "ops/cuda/activation.h"
#include "ops/cuda/embedding.h"
#include "ops/cuda/linear.h"
#include "ops/cuda/norm.h"
#include "ops/cuda/sampling.h"

namespace longctx::cuda::test {
namespace {

constexpr double kBf16Bound = 1e-2;
constexpr double kF32Bound = 1e-4;

struct GemmCase {
  int64_t m, n, k;
  DType y_dtype;
  bool bias, accumulate;
};

class LinearTest : public ::testing::TestWithParam<GemmCase> {};

TEST_P(LinearTest, MatchesFloat64Reference) {
  const GemmCase c = GetParam();
  Rng rng;
  SCOPED_TRACE("seed " + std::to_string(rng.seed));
  const auto x = rng.bf16(c.m * c.k), w = rng.bf16(c.n * c.k, 0.05f);
  const auto xd = to_double(x), wd = to_double(w);
  std::vector<double> ref(c.m * c.n, 0.0), bias_d(c.n, 0.0), y0_d(c.m * c.n, 0.0);
  DeviceBuffer<uint16_t> dx(x), dw(w);
  DeviceBuffer<float> y32(c.m * c.n), b32(c.n);
  DeviceBuffer<uint16_t> y16(c.m * c.n), b16(c.n);
  const bool f32 = c.y_dtype == DType::kF32;
  if (c.bias) {
    if (f32) {
      auto b = rng.f32(c.n);
      bias_d = to_double(b);
      b32.upload(b);
    } else {
      auto b = rng.bf16(c.n);
      bias_d = to_double(b);
      b16.upload(b);
    }
  }
  if (c.accumulate) {  // y starts as real data, not poison
    if (f32) {
      auto y0 = rng.f32(c.m * c.n);
      y0_d = to_double(y0);
      y32.upload(y0);
    } else {
      auto y0 = rng.bf16(c.m * c.n);
      y0_d = to_double(y0);
      y16.upload(y0);
    }
  }
  parallel_for(c.m, [&](int64_t i) {
    for (int64_t j = 0; j < c.n; ++j) {
      double s = bias_d[j] + y0_d[i * c.n + j];
      for (int64_t l = 0; l < c.k; ++l) s += xd[i * c.k + l] * wd[j * c.k + l];
      ref[i * c.n + j] = s;
    }
  });
  cublasLtHandle_t h;
  ASSERT_EQ(CUBLAS_STATUS_SUCCESS, cublasLtCreate(&h));
  DeviceBuffer<uint8_t> ws(32u << 20);
  BlasContext ctx{h, ws.get(), ws.size()};
  LinearParams p;
  p.x = dx.bf16();
  p.w = dw.bf16();
  p.bias =
      c.bias ? (f32 ? static_cast<const void*>(b32.get()) : static_cast<const void*>(b16.get())) : nullptr;
  p.y = f32 ? static_cast<void*>(y32.get()) : static_cast<void*>(y16.get());
  p.y_dtype = c.y_dtype;
  p.m = c.m;
  p.n = c.n;
  p.k = c.k;
  p.accumulate = c.accumulate;
  ASSERT_EQ(CUBLAS_STATUS_SUCCESS, linear(ctx, p, nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  CUDA_OK(cudaGetLastError());
  const double err = f32 ? rel_error(y32.download(), ref) : rel_error(y16.download(), ref);
  EXPECT_LE(err, f32 ? kF32Bound : kBf16Bound);
  RecordProperty("rel_error", std::to_string(err));
  cublasLtDestroy(h);
}

INSTANTIATE_TEST_SUITE_P(Shapes, LinearTest,
                         ::testing::Values(GemmCase{1, 256, 512, DType::kBF16, false, false},
                                           GemmCase{37, 1000, 768, DType::kBF16, true, false},
                                           GemmCase{128, 512, 2048, DType::kBF16, false, true},
                                           GemmCase{5, 3000, 256, DType::kF32, false, false},
                                           GemmCase{64, 384, 1024, DType::kF32, true, true},
                                           GemmCase{300, 256, 128, DType::kF32, false, true}));

TEST(Linear, RejectsBadDtype) {
  LinearParams p;
  p.y_dtype = DType::kI32;
  p.m = p.n = p.k = 1;
  EXPECT_EQ(CUBLAS_STATUS_INVALID_VALUE, linear(BlasContext{}, p, nullptr));
}

void norm_case(bool fused, int64_t rows, int64_t dim) {
  Rng rng;
  SCOPED_TRACE("seed " + std::to_string(rng.seed) + " rows " + std::to_string(rows) + " dim " +
               std::to_string(dim));
  const float eps = 1e-6f;
  auto x = rng.bf16(rows * dim, 2.0f), w = rng.bf16(dim), res = rng.bf16(rows * dim, 2.0f);
  const auto xd = to_double(x), wd = to_double(w), rd = to_double(res);
  std::vector<double> ref(rows * dim), res_ref(rows * dim);
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t j = 0; j < dim; ++j) {
      double v = xd[r * dim + j];
      // the stored residual is bf16(res + x), and the norm is of that stored value
      if (fused) v = bf16_to_f32(f32_to_bf16(static_cast<float>(rd[r * dim + j] + v)));
      res_ref[r * dim + j] = v;
      ss += v * v;
    }
    const double inv = 1.0 / std::sqrt(ss / dim + eps);
    for (int64_t j = 0; j < dim; ++j) ref[r * dim + j] = res_ref[r * dim + j] * inv * wd[j];
  }
  DeviceBuffer<uint16_t> dx(x), dw(w), dres(res), dout(rows * dim);
  if (fused)
    LAUNCH_OK(add_rms_norm(dres.bf16(), dx.bf16(), dw.bf16(), dout.bf16(), rows, dim, eps, nullptr));
  else
    LAUNCH_OK(rms_norm(dx.bf16(), dw.bf16(), dout.bf16(), rows, dim, eps, nullptr));
  EXPECT_LE(rel_error(dout.download(), ref), kBf16Bound);
  if (fused) EXPECT_LE(rel_error(dres.download(), res_ref), 1e-6);  // same rounding: exact
}

TEST(RmsNorm, Plain) {
  for (auto [rows, dim] : {std::pair{1, 64}, {7, 4096}, {33, 5120}, {3, 8}}) norm_case(false, rows, dim);
}
TEST(RmsNorm, FusedAdd) {
  for (auto [rows, dim] : {std::pair{1, 64}, {7, 4096}, {33, 2056}}) norm_case(true, rows, dim);
}
TEST(RmsNorm, InPlace) {
  Rng rng;
  const int64_t rows = 5, dim = 1024;
  auto x = rng.bf16(rows * dim), w = rng.bf16(dim);
  DeviceBuffer<uint16_t> dx(x), dw(w), dout(rows * dim);
  LAUNCH_OK(rms_norm(dx.bf16(), dw.bf16(), dout.bf16(), rows, dim, 1e-5f, nullptr));
  LAUNCH_OK(rms_norm(dx.bf16(), dw.bf16(), dx.bf16(), rows, dim, 1e-5f, nullptr));
  EXPECT_EQ(dx.download(), dout.download());
}
TEST(RmsNorm, RejectsDimNotMultipleOf8) {
  EXPECT_THROW(rms_norm(nullptr, nullptr, nullptr, 1, 12, 1e-6f, nullptr), std::invalid_argument);
}

TEST(SiluMul, FusedGateUpLayout) {
  for (auto [rows, n] : {std::pair{3, 1024}, {17, 11008}, {4, 37}}) {  // n = 37: the scalar path
    Rng rng;
    SCOPED_TRACE("seed " + std::to_string(rng.seed) + " n " + std::to_string(n));
    const int64_t stride = 2 * n;  // [gate | up] in one row
    auto gu = rng.bf16(rows * stride, 3.0f);
    const auto g = to_double(gu);
    std::vector<double> ref(rows * n);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < n; ++j) {
        const double a = g[r * stride + j], b = g[r * stride + n + j];
        ref[r * n + j] = a / (1.0 + std::exp(-a)) * b;
      }
    DeviceBuffer<uint16_t> dgu(gu), dout(rows * n);
    LAUNCH_OK(silu_mul(dgu.bf16(), dgu.bf16() + n, dout.bf16(), rows, n, stride, nullptr));
    EXPECT_LE(rel_error(dout.download(), ref), kBf16Bound);
  }
}

TEST(Embedding, GathersRowsExactlyAndZeroesBadIds) {
  for (int64_t dim : {64, 4096, 13}) {
    Rng rng;
    const int64_t vocab = 1000, n = 77;
    auto table = rng.bf16(vocab * dim);
    std::vector<int32_t> ids(n);
    for (auto& id : ids) id = static_cast<int32_t>(rng.uniform(0, vocab - 1));
    ids[5] = -1;
    ids[9] = static_cast<int32_t>(vocab);  // out of range → zeros, no fault
    DeviceBuffer<uint16_t> dt(table), dout(n * dim);
    DeviceBuffer<int32_t> did(ids);
    LAUNCH_OK(embedding(did.get(), n, dt.bf16(), vocab, dim, dout.bf16(), nullptr));
    const auto out = dout.download();
    for (int64_t t = 0; t < n; ++t)
      for (int64_t j = 0; j < dim; ++j) {
        const uint16_t want = (ids[t] < 0 || ids[t] >= vocab) ? 0 : table[ids[t] * dim + j];
        ASSERT_EQ(want, out[t * dim + j]) << "token " << t << " dim " << j;
      }
  }
}

TEST(Argmax, LargestFirstIndexOnTies) {
  Rng rng;
  const int64_t rows = 9, n = 151936;  // Qwen vocabulary
  auto logits = rng.f32(rows * n, 5.0f);
  std::vector<int32_t> want(rows);
  for (int64_t r = 0; r < rows; ++r) {
    float* row = logits.data() + r * n;
    if (r == 1) row[100] = row[200] = 1e4f;   // tie: lowest index wins
    if (r == 2) row[n - 1] = 1e4f;            // last element
    if (r == 3) row[0] = 1e4f;                // first element
    if (r == 4) row[7] = NAN, row[8] = 2e4f;  // NaN is skipped
    int64_t best = 0;
    for (int64_t j = 1; j < n; ++j)
      if (row[j] > row[best]) best = j;
    want[r] = static_cast<int32_t>(best);
  }
  DeviceBuffer<float> dl(logits);
  DeviceBuffer<int32_t> dout(rows);
  LAUNCH_OK(argmax(dl.get(), rows, n, dout.get(), nullptr));
  EXPECT_EQ(want, dout.download());
  EXPECT_EQ(100, dout.download()[1]);
}

}  // namespace
}  // namespace longctx::cuda::test
