// Grouped expert GEMMs (ops/cuda/grouped_gemm.h), every method (loop, grouped, auto),
// against a float64 host reference from the same bf16 inputs: each expert's rows checked
// on their own (‖out − ref‖/‖ref‖ ≤ 1e-2: one rounding of y to bf16, as the plain GEMM),
// outputs poisoned first so a row no GEMM wrote fails; uneven loads with empty experts
// (first, middle, last) and a single-row expert; bad offsets are refused before anything
// runs; kAuto's choice in the two measured regimes.
#include <cublasLt.h>
#include <cublas_v2.h>

#include <numeric>

#include "cuda/test_util.h"
#include "ops/cuda/grouped_gemm.h"

namespace longctx::cuda::test {
namespace {

constexpr double kBf16Bound = 1e-2;

struct GroupedCase {
  std::vector<int64_t> counts;  // rows per expert
  int64_t n, k;
};

// cuBLASLt and cuBLAS handles, the Lt workspace and the pointer arrays, for one stream.
class Contexts {
 public:
  Contexts() : ws_(32u << 20), ptrs_(grouped_gemm_pointer_bytes()) {
    EXPECT_EQ(CUBLAS_STATUS_SUCCESS, cublasLtCreate(&lt_));
    EXPECT_EQ(CUBLAS_STATUS_SUCCESS, cublasCreate(&blas_));
    ctx.lt = {lt_, ws_.get(), ws_.size()};
    ctx.handle = blas_;
    ctx.pointer_arrays = ptrs_.get();
  }
  ~Contexts() {
    cublasDestroy(blas_);
    cublasLtDestroy(lt_);
  }
  GroupedGemmContext ctx;

 private:
  cublasLtHandle_t lt_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  DeviceBuffer<uint8_t> ws_, ptrs_;
};

class GroupedGemmTest : public ::testing::TestWithParam<std::tuple<GroupedCase, GroupedGemmMethod>> {};

TEST_P(GroupedGemmTest, EachExpertMatchesFloat64Reference) {
  const auto& [c, method] = GetParam();
  Rng rng;
  SCOPED_TRACE("seed " + std::to_string(rng.seed) + ", " + grouped_gemm_method_name(method));
  const int64_t experts = static_cast<int64_t>(c.counts.size());
  std::vector<int64_t> offsets(c.counts.size() + 1, 0);
  std::partial_sum(c.counts.begin(), c.counts.end(), offsets.begin() + 1);
  const int64_t rows = offsets.back();
  const auto x = rng.bf16(rows * c.k), w = rng.bf16(experts * c.n * c.k, 0.05f);
  const auto xd = to_double(x), wd = to_double(w);
  std::vector<double> ref(rows * c.n);
  std::vector<int64_t> expert_of(rows);
  for (int64_t e = 0; e < experts; ++e)
    for (int64_t r = offsets[e]; r < offsets[e + 1]; ++r) expert_of[r] = e;
  parallel_for(rows, [&](int64_t i) {
    const double* we = wd.data() + expert_of[i] * c.n * c.k;
    for (int64_t j = 0; j < c.n; ++j) {
      double s = 0;
      for (int64_t l = 0; l < c.k; ++l) s += xd[i * c.k + l] * we[j * c.k + l];
      ref[i * c.n + j] = s;
    }
  });
  DeviceBuffer<uint16_t> dx(x), dw(w), dy(rows * c.n);
  Contexts cx;
  GroupedLinearParams p;
  p.x = dx.bf16();
  p.w = dw.bf16();
  p.y = dy.bf16();
  p.row_offsets = offsets.data();
  p.num_experts = experts;
  p.n = c.n;
  p.k = c.k;
  ASSERT_EQ(CUBLAS_STATUS_SUCCESS, grouped_linear(cx.ctx, p, method, nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  const auto y = dy.download();
  for (int64_t e = 0; e < experts; ++e) {
    if (c.counts[e] == 0) continue;
    const auto b = offsets[e] * c.n, end = offsets[e + 1] * c.n;
    const std::vector<uint16_t> ye(y.begin() + b, y.begin() + end);
    const std::vector<double> re(ref.begin() + b, ref.begin() + end);
    EXPECT_LE(rel_error(ye, re), kBf16Bound) << "expert " << e << " (" << c.counts[e] << " rows)";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, GroupedGemmTest,
    ::testing::Combine(
        ::testing::Values(GroupedCase{{3, 0, 17, 1, 40}, 48, 64},         // empty middle, 1-row expert
                          GroupedCase{{0, 5, 0, 0, 33, 2, 0}, 256, 128},  // empty first and last
                          GroupedCase{{64, 64, 64, 64}, 96, 200},         // balanced; k not a power of 2
                          GroupedCase{{1, 7, 130, 0, 19, 300, 2, 45, 0, 9, 77, 1}, 384, 256}),  // skewed
        ::testing::Values(GroupedGemmMethod::kLoopLt, GroupedGemmMethod::kCublasGrouped,
                          GroupedGemmMethod::kAuto)));

// kAuto's cost model picks the grouped call for many small experts and the loop for a few
// large ones — the two regimes measured (Qwen3-30B-A3B and Mixtral-8x7B at 256 tokens).
TEST(GroupedGemm, AutoPicksGroupedForManySmallExpertsAndTheLoopForFewLargeOnes) {
  std::vector<int64_t> qwen(129);
  for (int64_t e = 0; e <= 128; ++e) qwen[e] = 16 * e;  // 2048 rows over 128 experts
  EXPECT_EQ(GroupedGemmMethod::kCublasGrouped, choose_grouped_gemm_method(qwen.data(), 128, 1536, 2048));
  std::vector<int64_t> mixtral(9);
  for (int64_t e = 0; e <= 8; ++e) mixtral[e] = 64 * e;  // 512 rows over 8 experts
  EXPECT_EQ(GroupedGemmMethod::kLoopLt, choose_grouped_gemm_method(mixtral.data(), 8, 28672, 4096));
  EXPECT_EQ(GroupedGemmMethod::kLoopLt, choose_grouped_gemm_method(mixtral.data(), 8, 4096, 14336));
}

TEST(GroupedGemm, BadOffsetsAndMissingWorkspacesAreRefused) {
  Contexts cx;
  DeviceBuffer<uint16_t> dx(64 * 16), dw(4 * 16 * 16), dy(64 * 16);
  std::vector<int64_t> offsets{0, 10, 5, 20, 30};  // decreasing at expert 1
  GroupedLinearParams p;
  p.x = dx.bf16();
  p.w = dw.bf16();
  p.y = dy.bf16();
  p.row_offsets = offsets.data();
  p.num_experts = 4;
  p.n = 16;
  p.k = 16;
  for (auto m : {GroupedGemmMethod::kLoopLt, GroupedGemmMethod::kCublasGrouped})
    EXPECT_EQ(CUBLAS_STATUS_INVALID_VALUE, grouped_linear(cx.ctx, p, m, nullptr));
  offsets = {1, 10, 20, 30, 40};  // not starting at 0
  EXPECT_EQ(CUBLAS_STATUS_INVALID_VALUE, grouped_linear(cx.ctx, p, GroupedGemmMethod::kLoopLt, nullptr));
  offsets = {0, 10, 20, 30, 40};
  p.num_experts = kMaxGroupedExperts + 1;
  EXPECT_EQ(CUBLAS_STATUS_INVALID_VALUE, grouped_linear(cx.ctx, p, GroupedGemmMethod::kLoopLt, nullptr));
  p.num_experts = 4;
  GroupedGemmContext no_ptrs = cx.ctx;
  no_ptrs.pointer_arrays = nullptr;
  EXPECT_EQ(CUBLAS_STATUS_INVALID_VALUE,
            grouped_linear(no_ptrs, p, GroupedGemmMethod::kCublasGrouped, nullptr));
  p.y = nullptr;
  EXPECT_EQ(CUBLAS_STATUS_INVALID_VALUE, grouped_linear(cx.ctx, p, GroupedGemmMethod::kLoopLt, nullptr));
  // No rows at all: nothing to do, y untouched.
  p.y = dy.bf16();
  offsets = {0, 0, 0, 0, 0};
  for (auto m : {GroupedGemmMethod::kLoopLt, GroupedGemmMethod::kCublasGrouped})
    EXPECT_EQ(CUBLAS_STATUS_SUCCESS, grouped_linear(cx.ctx, p, m, nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  for (uint16_t v : dy.download()) ASSERT_EQ(v, 0xffff);
}

}  // namespace
}  // namespace longctx::cuda::test
