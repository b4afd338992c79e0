// longctx_bench_moe_grouped: the expert GEMMs of one MoE layer on the GPU it runs on, one
// JSON object per line. For Qwen3-30B-A3B (128 experts, top-8, hidden 2048, expert
// intermediate 768) and Mixtral-8x7B (8 experts, top-2, hidden 4096, intermediate 14336)
// at 256 … 8192 tokens, each of the two expert GEMMs (gate_up: n = 2·inter, k = hidden;
// down: n = hidden, k = inter) by
//   loop_lt         one cuBLASLt matmul per expert (ops/cuda/grouped_gemm.h)
//   cublas_grouped  one cublasGemmGroupedBatchedEx call
//   auto            the method choose_grouped_gemm_method picks
//   dense_floor     one cuBLASLt GEMM over all routed rows with a single weight: the same
//                   FLOPs without grouping (what grouping costs is the gap to it).
// Routing: each token picks top-k experts by Gumbel-top-k over a fixed log-normal expert
// popularity (σ = 0.5, seeded), so loads are uneven as in real routers — the `moe_routing`
// lines give the per-expert row counts, which bench/cuda/moe_peer.py reads to run torch's
// grouped_mm on exactly the same groups in the same session.
// Timing: CUDA events around each call, 3 warm-ups, median of 20; bf16 inputs, fp32
// accumulation, bf16 outputs; host time to enqueue is inside the measured interval.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "ops/cuda/grouped_gemm.h"
#include "cuda_check.h"  // same folder
#include "ops/cuda/linear.h"

namespace {

using namespace longctx::cuda;

#define CHECK_BLAS(expr)                                                                        \
  do {                                                                                          \
    const cublasStatus_t s_ = (expr);                                                           \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                          \
      std::fprintf(stderr, "%s:%d %s: cuBLAS status %d\n", __FILE__, __LINE__, #expr, int(s_)); \
      std::exit(1);                                                                             \
    }                                                                                           \
  } while (0)

__global__ void fill_random(__nv_bfloat16* p, size_t n, uint32_t seed, float scale) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed ^ static_cast<uint32_t>(i >> 32);
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    p[i] = __float2bfloat16(((static_cast<float>(h & 0xffffff) / 16777216.0f) * 2.0f - 0.999f) * scale);
  }
}

__nv_bfloat16* random_bf16(size_t n, uint32_t seed, float scale) {
  __nv_bfloat16* p = nullptr;
  CHECK(cudaMalloc(&p, n * sizeof(__nv_bfloat16)));
  fill_random<<<1024, 256>>>(p, n, seed, scale);
  CHECK(cudaGetLastError());
  return p;
}

struct MoeShape {
  const char* name;
  int64_t experts, top_k, hidden, inter;
};

// Rows per expert for `tokens` tokens: Gumbel-top-k over log-popularity, i.e. sampling k
// distinct experts per token with probabilities ∝ popularity.
std::vector<int64_t> route(const MoeShape& s, int64_t tokens, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal(0.0, 0.5);
  std::vector<double> log_pop(static_cast<size_t>(s.experts));
  for (double& v : log_pop) v = normal(gen);
  std::uniform_real_distribution<double> uni(1e-12, 1.0);
  std::vector<int64_t> counts(static_cast<size_t>(s.experts), 0);
  std::vector<std::pair<double, int64_t>> score(static_cast<size_t>(s.experts));
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t e = 0; e < s.experts; ++e) score[e] = {log_pop[e] - std::log(-std::log(uni(gen))), e};
    std::partial_sort(score.begin(), score.begin() + s.top_k, score.end(), std::greater<>());
    for (int64_t j = 0; j < s.top_k; ++j) ++counts[score[j].second];
  }
  return counts;
}

template <typename F>
double median_ms(F&& launch, cudaStream_t stream, int reps = 20) {
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  for (int i = 0; i < 3; ++i) launch();
  CHECK(cudaStreamSynchronize(stream));
  std::vector<float> ms(static_cast<size_t>(reps));
  for (float& m : ms) {
    CHECK(cudaEventRecord(a, stream));
    launch();
    CHECK(cudaEventRecord(b, stream));
    CHECK(cudaEventSynchronize(b));
    CHECK(cudaEventElapsedTime(&m, a, b));
  }
  CHECK(cudaEventDestroy(a));
  CHECK(cudaEventDestroy(b));
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main() {
  const MoeShape shapes[] = {{"qwen3_30b_a3b", 128, 8, 2048, 768}, {"mixtral_8x7b", 8, 2, 4096, 14336}};
  const int64_t token_counts[] = {256, 1024, 4096, 8192};
  cudaStream_t stream;
  CHECK(cudaStreamCreate(&stream));
  cublasLtHandle_t lt;
  cublasHandle_t blas;
  CHECK_BLAS(cublasLtCreate(&lt));
  CHECK_BLAS(cublasCreate(&blas));
  void* ws = nullptr;
  void* ptrs = nullptr;
  const size_t ws_bytes = 32u << 20;
  CHECK(cudaMalloc(&ws, ws_bytes));
  CHECK(cudaMalloc(&ptrs, grouped_gemm_pointer_bytes()));
  GroupedGemmContext ctx{{lt, ws, ws_bytes}, blas, ptrs};
  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("{\"bench\": \"device\", \"name\": \"%s\", \"sms\": %d}\n", prop.name,
              prop.multiProcessorCount);

  for (const MoeShape& s : shapes) {
    struct Gemm {
      const char* name;
      int64_t n, k;
    };
    const Gemm gemms[] = {{"gate_up", 2 * s.inter, s.hidden}, {"down", s.hidden, s.inter}};
    const int64_t max_rows = token_counts[3] * s.top_k;
    const int64_t max_k = std::max(s.hidden, s.inter), max_n = std::max(2 * s.inter, s.hidden);
    __nv_bfloat16* x = random_bf16(static_cast<size_t>(max_rows * max_k), 1, 1.0f);
    __nv_bfloat16* y = nullptr;
    CHECK(cudaMalloc(&y, static_cast<size_t>(max_rows * max_n) * sizeof(__nv_bfloat16)));
    __nv_bfloat16* w[2];
    for (int g = 0; g < 2; ++g)
      w[g] = random_bf16(static_cast<size_t>(s.experts * gemms[g].n * gemms[g].k), 2 + g, 0.02f);
    for (int64_t tokens : token_counts) {
      const std::vector<int64_t> counts = route(s, tokens, 1234 + static_cast<uint64_t>(tokens));
      std::vector<int64_t> offsets(counts.size() + 1, 0);
      std::partial_sum(counts.begin(), counts.end(), offsets.begin() + 1);
      const int64_t rows = offsets.back();
      const double mean = static_cast<double>(rows) / static_cast<double>(s.experts);
      const int64_t max_count = *std::max_element(counts.begin(), counts.end());
      const auto empty = std::count(counts.begin(), counts.end(), 0);
      std::string list;
      for (int64_t c : counts) list += (list.empty() ? "" : ", ") + std::to_string(c);
      std::printf(
          "{\"bench\": \"moe_routing\", \"shape\": \"%s\", \"experts\": %lld, \"top_k\": %lld, \"hidden\": "
          "%lld, "
          "\"inter\": %lld, \"tokens\": %lld, \"rows\": %lld, \"max_over_mean\": %.3f, \"empty_experts\": "
          "%lld, "
          "\"counts\": [%s]}\n",
          s.name, (long long)s.experts, (long long)s.top_k, (long long)s.hidden, (long long)s.inter,
          (long long)tokens, (long long)rows, static_cast<double>(max_count) / mean, (long long)empty,
          list.c_str());
      for (int g = 0; g < 2; ++g) {
        GroupedLinearParams p;
        p.x = x;
        p.w = w[g];
        p.y = y;
        p.row_offsets = offsets.data();
        p.num_experts = s.experts;
        p.n = gemms[g].n;
        p.k = gemms[g].k;
        const double flops =
            2.0 * static_cast<double>(rows) * static_cast<double>(p.n) * static_cast<double>(p.k);
        auto emit = [&](const char* method, double ms) {
          std::printf(
              "{\"bench\": \"moe_gemm\", \"impl\": \"longctx\", \"shape\": \"%s\", \"tokens\": %lld, "
              "\"rows\": %lld, "
              "\"gemm\": \"%s\", \"n\": %lld, \"k\": %lld, \"method\": \"%s\", \"ms\": %.4f, \"tflops\": "
              "%.1f}\n",
              s.name, (long long)tokens, (long long)rows, gemms[g].name, (long long)p.n, (long long)p.k,
              method, ms, flops / (ms * 1e-3) / 1e12);
          std::fflush(stdout);
        };
        for (GroupedGemmMethod m :
             {GroupedGemmMethod::kLoopLt, GroupedGemmMethod::kCublasGrouped, GroupedGemmMethod::kAuto}) {
          const double ms = median_ms([&] { CHECK_BLAS(grouped_linear(ctx, p, m, stream)); }, stream);
          std::string name = grouped_gemm_method_name(m);
          if (m == GroupedGemmMethod::kAuto)  // "auto:<the method it chose>"
            name += std::string(":") +
                    grouped_gemm_method_name(choose_grouped_gemm_method(offsets.data(), s.experts, p.n, p.k));
          emit(name.c_str(), ms);
        }
        LinearParams d;
        d.x = x;
        d.w = w[g];
        d.y = y;
        d.m = rows;
        d.n = p.n;
        d.k = p.k;
        emit("dense_floor", median_ms([&] { CHECK_BLAS(linear(ctx.lt, d, stream)); }, stream));
      }
    }
    CHECK(cudaFree(x));
    CHECK(cudaFree(y));
    CHECK(cudaFree(w[0]));
    CHECK(cudaFree(w[1]));
  }
  cublasDestroy(blas);
  cublasLtDestroy(lt);
  CHECK(cudaFree(ws));
  CHECK(cudaFree(ptrs));
  CHECK(cudaStreamDestroy(stream));
  return 0;
}
