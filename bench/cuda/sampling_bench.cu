// longctx_bench_sampling: cuda::sample (and cuda::argmax) on vocab-128256 fp32 logits for
// m = 1, 8 and 64 rows, each beside the LM head GEMM that makes those logits in a Llama-3-8B
// shaped model (m × 4096 × 128256 through cuda::linear, bf16 in, fp32 out), timed in the same
// run. Prints one JSON object per line; bench/RESULTS.md "GPU sampling" records them.
// Logits: N(0, 2)-like (a sum of four uniforms) plus 64 confident tokens per row at 8-14,
// a different row each; the rows stay in L2 across repetitions (as they would right after
// the GEMM that wrote them). Timing: events around each call, 5 warm-ups, median of 100.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "cuda_check.h"  // same folder
#include "ops/cuda/linear.h"
#include "ops/cuda/sampling.h"

namespace {


__device__ uint32_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return static_cast<uint32_t>(x);
}

__global__ void fill_logits(float* p, int64_t rows, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < rows * n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float s = 0;
    for (int k = 0; k < 4; ++k) s += static_cast<float>(mix(4 * i + k) >> 8) * 0x1p-24f - 0.5f;
    const uint32_t h = mix(~i);
    p[i] = (h % 2000 == 0) ? 8.0f + 6.0f * static_cast<float>(h >> 16) / 65536.0f : 3.5f * s;
  }
}

__global__ void fill_bf16(__nv_bfloat16* p, int64_t n, uint64_t seed) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    p[i] = __float2bfloat16((static_cast<float>(mix(i ^ (seed << 40)) >> 8) * 0x1p-24f - 0.5f) * 0.1f);
}

double time_us(const std::function<void()>& f, int reps = 100) {
  for (int i = 0; i < 5; ++i) f();
  CHECK(cudaDeviceSynchronize());
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  std::vector<float> t(reps);
  for (int i = 0; i < reps; ++i) {
    CHECK(cudaEventRecord(a));
    f();
    CHECK(cudaEventRecord(b));
    CHECK(cudaEventSynchronize(b));
    CHECK(cudaEventElapsedTime(&t[i], a, b));
  }
  CHECK(cudaGetLastError());
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return 1000.0 * t[reps / 2];
}

struct Config {
  const char* name;
  float temperature;
  int32_t top_k;
  float top_p;
  float min_p;
  bool logprob;
};

}  // namespace

int main() {
  using namespace longctx::cuda;
  const int64_t vocab = 128256, hidden = 4096, max_m = 64;
  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("{\"bench\":\"device\",\"name\":\"%s\",\"sms\":%d}\n", prop.name, prop.multiProcessorCount);

  __nv_bfloat16 *x = nullptr, *w = nullptr;
  float *y = nullptr, *logits = nullptr;
  CHECK(cudaMalloc(&x, max_m * hidden * sizeof(__nv_bfloat16)));
  CHECK(cudaMalloc(&w, vocab * hidden * sizeof(__nv_bfloat16)));
  CHECK(cudaMalloc(&y, max_m * vocab * sizeof(float)));
  CHECK(cudaMalloc(&logits, max_m * vocab * sizeof(float)));
  fill_bf16<<<1024, 256>>>(x, max_m * hidden, 1);
  fill_bf16<<<4096, 256>>>(w, vocab * hidden, 2);
  fill_logits<<<4096, 256>>>(logits, max_m, vocab);
  CHECK(cudaGetLastError());
  void* blas_ws = nullptr;
  CHECK(cudaMalloc(&blas_ws, 32u << 20));
  cublasLtHandle_t h;
  if (cublasLtCreate(&h) != CUBLAS_STATUS_SUCCESS) return 1;
  const BlasContext ctx{h, blas_ws, 32u << 20};

  SamplingRow* params = nullptr;
  int32_t* ids = nullptr;
  float* lps = nullptr;
  CHECK(cudaMalloc(&params, max_m * sizeof(SamplingRow)));
  CHECK(cudaMalloc(&ids, max_m * sizeof(int32_t)));
  CHECK(cudaMalloc(&lps, max_m * sizeof(float)));
  const size_t ws_bytes = sample_workspace_bytes(max_m, vocab);
  void* ws = nullptr;
  if (ws_bytes > 0) CHECK(cudaMalloc(&ws, ws_bytes));

  const Config configs[] = {
      {"T1", 1.0f, -1, 1.0f, 0.0f, false},
      {"T1_logprob", 1.0f, -1, 1.0f, 0.0f, true},
      {"T0.7_k50", 0.7f, 50, 1.0f, 0.0f, false},
      {"T0.7_p0.9", 0.7f, -1, 0.9f, 0.0f, false},
      {"T1_p0.95", 1.0f, -1, 0.95f, 0.0f, false},
      {"T0.7_k50_p0.9_minp0.05", 0.7f, 50, 0.9f, 0.05f, false},
      {"T1_k1000_p0.9", 1.0f, 1000, 0.9f, 0.0f, false},
      {"T1_minp0.1", 1.0f, -1, 1.0f, 0.1f, false},
  };
  for (int64_t m : {1, 8, 64}) {
    LinearParams lp;
    lp.x = x;
    lp.w = w;
    lp.y = y;
    lp.y_dtype = longctx::DType::kF32;
    lp.m = m;
    lp.n = vocab;
    lp.k = hidden;
    const double gemm_us = time_us([&] {
      if (linear(ctx, lp, nullptr) != CUBLAS_STATUS_SUCCESS) std::exit(2);
    });
    const double argmax_us = time_us([&] { CHECK(argmax(logits, m, vocab, ids, nullptr)); });
    std::printf(
        "{\"bench\":\"sampling\",\"m\":%lld,\"vocab\":%lld,\"config\":\"greedy_argmax\",\"us\":%.1f,"
        "\"lm_head_us\":%.1f}\n",
        static_cast<long long>(m), static_cast<long long>(vocab), argmax_us, gemm_us);
    for (const Config& c : configs) {
      std::vector<SamplingRow> host(m);
      for (int64_t r = 0; r < m; ++r)
        host[r] = SamplingRow{c.temperature, c.top_k, c.top_p, c.min_p, 1234u + static_cast<uint64_t>(r), 0};
      CHECK(cudaMemcpy(params, host.data(), m * sizeof(SamplingRow), cudaMemcpyHostToDevice));
      const double us = time_us([&] {
        CHECK(sample(logits, m, vocab, params, ids, c.logprob ? lps : nullptr, ws, ws_bytes, nullptr));
      });
      std::printf(
          "{\"bench\":\"sampling\",\"m\":%lld,\"vocab\":%lld,\"config\":\"%s\",\"us\":%.1f,"
          "\"lm_head_us\":%.1f}\n",
          static_cast<long long>(m), static_cast<long long>(vocab), c.name, us, gemm_us);
    }
  }
  cublasLtDestroy(h);
  return 0;
}
