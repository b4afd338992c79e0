// longctx_bench_kernels: times the CUDA kernels of src/ops/cuda on the GPU it runs on and
// prints one JSON object per line (bench/cuda/peer_attention.py measures the PyTorch peers
// in the same session; bench/cuda/report.py turns both into a bench/RESULTS.md section).
//   prefill attention: causal, one sequence of L tokens, 32 q heads / 8 kv heads, d 128,
//     L = 4K, 16K and 64K, paged cache (block 16, blocks in random order); FLOPs = 2·L²·Hq·d
//     (causal half of 4·L²·Hq·d).
//   decode attention: B = 1 and 8 sequences × 32K and 128K context, one query token each;
//     bytes = the K and V read once; compared with a device-to-device copy's bandwidth
//     (bytes read + written). `--sweep`: decode only, at forced partition sizes too.
// Each attention figure twice: events around one call (ms, as the peers are timed: the
// host's enqueue and the launch latency included, ~3–6 µs) and graph_ms: the call captured in
// a CUDA graph, replayed `inner` times back to back between the events, per replay (10 for
// decode, 1 for prefill) — the device time when the launch is hidden behind earlier work, as
// inside the model's decode-step graph. The smallest decode, 1 sequence × 32K, reads 134 MB of
// K/V, 2.7× the 50 MB L2, and every partition restarts from its first key, far from the last
// keys the previous replay left in L2.
//   GEMM: cuBLASLt bf16 8192³ (a sanity check of the linear path against torch.matmul).
// Timing: CUDA events around each launch, 3 warm-ups, median of N runs; inputs are
// pseudo-random bf16 (never zeros).
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "cuda_check.h"  // same folder
#include "ops/cuda/linear.h"
#include "ops/cuda/paged_attention.h"

namespace {


__global__ void fill_random(__nv_bfloat16* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed ^ static_cast<uint32_t>(i >> 32);
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    p[i] = __float2bfloat16((static_cast<float>(h & 0xffffff) / 16777216.0f) * 2.0f - 0.999f);
  }
}

template <typename T>
T* dev_alloc(size_t n) {
  T* p = nullptr;
  CHECK(cudaMalloc(&p, n * sizeof(T)));
  return p;
}

__nv_bfloat16* random_bf16(size_t n, uint32_t seed) {
  auto* p = dev_alloc<__nv_bfloat16>(n);
  fill_random<<<1024, 256>>>(p, n, seed);
  CHECK(cudaGetLastError());
  return p;
}

// Median milliseconds of `reps` runs of f after 3 warm-ups (events around each run).
double time_ms(const std::function<void()>& f, int reps, cudaStream_t stream = nullptr) {
  for (int i = 0; i < 3; ++i) f();
  CHECK(cudaDeviceSynchronize());
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  std::vector<float> t(reps);
  for (int i = 0; i < reps; ++i) {
    CHECK(cudaEventRecord(a, stream));
    f();
    CHECK(cudaEventRecord(b, stream));
    CHECK(cudaEventSynchronize(b));
    CHECK(cudaEventElapsedTime(&t[i], a, b));
  }
  CHECK(cudaGetLastError());
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[reps / 2];
}

struct Paged {
  __nv_bfloat16 *kc, *vc;
  int64_t *q_begin, *ctx;
  int32_t* tables;
  int64_t stride;
};

// B sequences of `len` keys each in a paged cache with the blocks in random order.
Paged make_paged(int64_t B, int64_t len, int64_t nq, int64_t hkv, int64_t d, int64_t bs) {
  Paged p{};
  const int64_t nb = (len + bs - 1) / bs;
  p.stride = nb;
  const int64_t blocks = 1 + B * nb;
  p.kc = random_bf16(blocks * bs * hkv * d, 1);
  p.vc = random_bf16(blocks * bs * hkv * d, 2);
  std::vector<int32_t> ids(B * nb);
  std::iota(ids.begin(), ids.end(), 1);
  std::shuffle(ids.begin(), ids.end(), std::mt19937(7));
  std::vector<int64_t> qb(B + 1), ctx(B, len);
  for (int64_t s = 0; s <= B; ++s) qb[s] = s * nq;
  p.tables = dev_alloc<int32_t>(ids.size());
  p.q_begin = dev_alloc<int64_t>(B + 1);
  p.ctx = dev_alloc<int64_t>(B);
  CHECK(cudaMemcpy(p.tables, ids.data(), ids.size() * 4, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(p.q_begin, qb.data(), qb.size() * 8, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(p.ctx, ctx.data(), ctx.size() * 8, cudaMemcpyHostToDevice));
  return p;
}

void free_paged(Paged& p) {
  cudaFree(p.kc);
  cudaFree(p.vc);
  cudaFree(p.q_begin);
  cudaFree(p.ctx);
  cudaFree(p.tables);
}

// One attention problem's device buffers: B sequences of `len` keys, nq queries each.
struct AttentionSetup {
  Paged pg{};
  __nv_bfloat16* q = nullptr;
  __nv_bfloat16* out = nullptr;
  float* lse = nullptr;
  longctx::cuda::PagedAttentionParams p;
  int64_t total_q = 0;

  AttentionSetup(int64_t B, int64_t len, int64_t nq, int64_t hq, int64_t hkv, int64_t d) {
    pg = make_paged(B, len, nq, hkv, d, 16);
    total_q = B * nq;
    q = random_bf16(total_q * hq * d, 3);
    out = dev_alloc<__nv_bfloat16>(total_q * hq * d);
    lse = dev_alloc<float>(total_q * hq);
    p.q = q;
    p.out = out;
    p.lse = lse;
    p.k_cache = pg.kc;
    p.v_cache = pg.vc;
    p.block_size = 16;
    p.num_seqs = B;
    p.q_begin = pg.q_begin;
    p.context_lens = pg.ctx;
    p.block_tables = pg.tables;
    p.block_table_stride = pg.stride;
    p.max_num_q = nq;
    p.max_context_len = len;
    p.num_q_heads = hq;
    p.num_kv_heads = hkv;
    p.head_dim = d;
  }
  ~AttentionSetup() {
    cudaFree(q);
    cudaFree(out);
    cudaFree(lse);
    free_paged(pg);
  }

  struct Timing {
    double ms;        // events around each call, host enqueue included (as the peers are timed)
    double graph_ms;  // per replay of `inner` back-to-back CUDA-graph replays: device time
    int splits;
  };

  // Times the call with keys split into partitions of `partition` keys (0 = automatic).
  Timing time(int64_t partition, int reps, int inner) {
    p.kv_partition_size = partition;
    const size_t ws = longctx::cuda::paged_attention_workspace_bytes(p, total_q);
    void* wsp = nullptr;
    if (ws) CHECK(cudaMalloc(&wsp, ws));
    p.workspace = wsp;
    p.workspace_bytes = ws;
    Timing t{};
    // Partitions: workspace / (rows · (d+1) · 4) bytes, for the report.
    t.splits =
        ws ? static_cast<int>(ws / (static_cast<size_t>(total_q * p.num_q_heads) * (p.head_dim + 1) * 4)) : 1;
    t.ms = time_ms([&] { CHECK(longctx::cuda::paged_attention(p, total_q, nullptr)); }, reps);
    cudaStream_t st;
    CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    cudaGraph_t g;
    cudaGraphExec_t ge;
    CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    CHECK(longctx::cuda::paged_attention(p, total_q, st));
    CHECK(cudaStreamEndCapture(st, &g));
    CHECK(cudaGraphInstantiate(&ge, g, 0));
    t.graph_ms = time_ms(
                     [&] {
                       for (int i = 0; i < inner; ++i) CHECK(cudaGraphLaunch(ge, st));
                     },
                     reps, st) /
                 inner;
    CHECK(cudaGraphExecDestroy(ge));
    CHECK(cudaGraphDestroy(g));
    CHECK(cudaStreamDestroy(st));
    cudaFree(wsp);
    return t;
  }
};

}  // namespace

int main(int argc, char** argv) {
  // --sweep: decode only, at several forced partition sizes beside the automatic one (how
  // the flash-decoding split was chosen; docs/cuda.md).
  const bool sweep = argc > 1 && std::string(argv[1]) == "--sweep";
  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("{\"bench\":\"device\",\"name\":\"%s\",\"sms\":%d,\"l2_mb\":%.1f}\n", prop.name,
              prop.multiProcessorCount, prop.l2CacheSize / 1048576.0);
  const int64_t hq = 32, hkv = 8, d = 128;
  for (int64_t L : {4096, 16384, 65536}) {
    if (sweep) break;
    AttentionSetup a(1, L, L, hq, hkv, d);
    const auto t = a.time(0, L > 20000 ? 5 : L > 8192 ? 10 : 20, 1);
    const double flops = 2.0 * L * L * hq * d;
    std::printf(
        "{\"bench\":\"prefill_attention\",\"L\":%lld,\"hq\":%lld,\"hkv\":%lld,\"d\":%lld,\"ms\":%.4f,"
        "\"tflops\":%.1f,\"graph_ms\":%.4f,\"splits\":%d}\n",
        static_cast<long long>(L), static_cast<long long>(hq), static_cast<long long>(hkv),
        static_cast<long long>(d), t.ms, flops / t.ms / 1e9, t.graph_ms, t.splits);
    std::fflush(stdout);
  }
  for (int64_t L : {32768, 131072})
    for (int64_t B : {1, 8}) {
      AttentionSetup a(B, L, 1, hq, hkv, d);
      const double bytes = 2.0 * B * L * hkv * d * 2;  // K and V, bf16
      std::vector<int64_t> parts{0};
      if (sweep)
        for (int64_t part : {256, 384, 512, 768, 1024, 1536, 2048, 4096, 8192, 16384, 32768})
          if (part < L) parts.push_back(part);
      for (int64_t part : parts) {
        const auto t = a.time(part, 30, 10);
        std::printf(
            "{\"bench\":\"%s\",\"B\":%lld,\"context\":%lld,\"hq\":%lld,\"hkv\":%lld,\"d\":%lld,"
            "\"partition\":%lld,\"ms\":%.4f,\"kv_gbps\":%.1f,\"graph_ms\":%.4f,\"graph_kv_gbps\":%.1f,"
            "\"splits\":%d}\n",
            sweep ? "decode_sweep" : "decode_attention", static_cast<long long>(B), static_cast<long long>(L),
            static_cast<long long>(hq), static_cast<long long>(hkv), static_cast<long long>(d),
            static_cast<long long>(part), t.ms, bytes / t.ms / 1e6, t.graph_ms, bytes / t.graph_ms / 1e6,
            t.splits);
        std::fflush(stdout);
      }
    }
  {  // device-to-device copy: the bandwidth ceiling (bytes read + written)
    const size_t n = size_t{1} << 30;
    void *a = nullptr, *b = nullptr;
    CHECK(cudaMalloc(&a, n));
    CHECK(cudaMalloc(&b, n));
    CHECK(cudaMemset(a, 0x5a, n));
    const double ms = time_ms([&] { CHECK(cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice)); }, 20);
    std::printf("{\"bench\":\"d2d_copy\",\"bytes\":%zu,\"ms\":%.4f,\"gbps_rw\":%.1f}\n", n, ms,
                2.0 * n / ms / 1e6);
    cudaFree(a);
    cudaFree(b);
  }
  if (!sweep) {  // GEMM through our linear() (cuBLASLt)
    const int64_t m = 8192, n = 8192, k = 8192;
    __nv_bfloat16* x = random_bf16(m * k, 4);
    __nv_bfloat16* w = random_bf16(n * k, 5);
    auto* y = dev_alloc<__nv_bfloat16>(m * n);
    void* ws = nullptr;
    CHECK(cudaMalloc(&ws, 32u << 20));
    cublasLtHandle_t h;
    if (cublasLtCreate(&h) != CUBLAS_STATUS_SUCCESS) return 1;
    longctx::cuda::BlasContext ctx{h, ws, 32u << 20};
    longctx::cuda::LinearParams p;
    p.x = x;
    p.w = w;
    p.y = y;
    p.m = m;
    p.n = n;
    p.k = k;
    const double ms = time_ms(
        [&] {
          if (longctx::cuda::linear(ctx, p, nullptr) != CUBLAS_STATUS_SUCCESS) std::exit(2);
        },
        10);
    std::printf("{\"bench\":\"gemm\",\"m\":%lld,\"n\":%lld,\"k\":%lld,\"ms\":%.4f,\"tflops\":%.1f}\n",
                static_cast<long long>(m), static_cast<long long>(n), static_cast<long long>(k), ms,
                2.0 * m * n * k / ms / 1e9);
    cublasLtDestroy(h);
  }
  return 0;
}
