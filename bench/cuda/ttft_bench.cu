// longctx_bench_ttft: where the GPU model's prefill time goes. Runs one decoder layer of the
// Llama-3.1-8B shape (hidden 4096, 32 q / 8 kv heads, d 128, intermediate 14336) through the
// same ops and the same arguments as CudaDenseModel::enqueue_step, at the chunk shapes of
// `longctx bench latency` (a prompt of L tokens in steps of T), with CUDA events around every
// op, and multiplies by the 32 layers:
//   GEMMs per projection (qkv, o_proj and down into the fp32 residual with beta = 1,
//     gate_up), each also with a bf16 output and no accumulate (what torch.matmul does) and
//     with every algorithm cuBLASLt's heuristic offers (up to 8; the model takes the first);
//   attention of every chunk (T queries over the c·T cached keys before them + causal);
//   the elementwise ops (the two RMSNorms, RoPE + KV write, SiLU·mul), each beside the bytes
//   it must move ÷ the measured copy bandwidth.
// The sum estimates the TTFT the model's ops account for (the embedding, the final norm and
// the one-row LM head are left out: well under 1 ms), to set beside `bench latency`'s
// measured TTFT: the difference is host time between the ops. The peers at the same shapes:
// bench/cuda/ttft_peer.py. JSON lines on stdout, a table on stderr.
//   longctx_bench_ttft [--chunks 16384,32768] [--prompts 32768,131072] [--reps 5] [--algos 8]
//                      [--attention-only 1]
// --algos 0 skips the sweep over cuBLASLt's algorithms; --attention-only 1 times the attention
// alone (the kernel variants of docs/cuda_prefill_notes.md are chosen by environment).
// Weights and activations are pseudo-random bf16 (never zeros); the K/V cache is random too
// (the keys before a chunk need not be the ones its earlier chunks would have written).
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "cuda_check.h"  // same folder
#include "ops/cuda/activation.h"
#include "ops/cuda/fill.h"
#include "ops/cuda/linear.h"
#include "ops/cuda/norm.h"
#include "ops/cuda/paged_attention.h"
#include "ops/cuda/rope.h"

namespace {

constexpr int64_t kH = 4096, kHq = 32, kHkv = 8, kD = 128, kInter = 14336, kLayers = 32, kBlock = 16;
constexpr int64_t kQw = kHq * kD, kKvw = kHkv * kD, kQkvw = kQw + 2 * kKvw;

#define LT_CHECK(expr)                                                                     \
  do {                                                                                     \
    const cublasStatus_t s_ = (expr);                                                      \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                     \
      std::fprintf(stderr, "%s:%d %s: cuBLAS status %d\n", __FILE__, __LINE__, #expr, s_); \
      std::exit(1);                                                                        \
    }                                                                                      \
  } while (0)

template <typename T>
T* dev_alloc(size_t n) {
  T* p = nullptr;
  CHECK(cudaMalloc(&p, n * sizeof(T)));
  return p;
}

__nv_bfloat16* random_bf16(size_t n, uint64_t seed, float bound) {
  auto* p = dev_alloc<__nv_bfloat16>(n);
  CHECK(longctx::cuda::fill_uniform_bf16(p, static_cast<int64_t>(n), seed, bound, nullptr));
  return p;
}

std::vector<int64_t> parse_list(const char* s) {
  std::vector<int64_t> v;
  for (const char* p = s; *p;) {
    v.push_back(std::strtoll(p, nullptr, 10));
    const char* c = std::strchr(p, ',');
    if (!c) break;
    p = c + 1;
  }
  return v;
}

__global__ void widen(const __nv_bfloat16* x, float* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    y[i] = __bfloat162float(x[i]);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median milliseconds of `reps` runs of f after one warm-up (events around each run).
double time_ms(const std::function<void()>& f, int reps) {
  f();
  CHECK(cudaDeviceSynchronize());
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    CHECK(cudaEventRecord(a));
    f();
    CHECK(cudaEventRecord(b));
    CHECK(cudaEventSynchronize(b));
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  CHECK(cudaGetLastError());
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return median(t);
}

// y[m,n] = x[m,k]·W[n,k]ᵀ through cuBLASLt with the descriptors linear() builds, and the
// heuristic's first `want` algorithms (linear() runs the first).
struct LtGemm {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulHeuristicResult_t algos[8];
  int num_algos = 0;
  LtGemm(cublasLtHandle_t h, int64_t m, int64_t n, int64_t k, bool f32_out, size_t ws, int want) {
    LT_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    LT_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
    LT_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
    LT_CHECK(cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, k, n, k));
    LT_CHECK(cublasLtMatrixLayoutCreate(&b, CUDA_R_16BF, k, m, k));
    LT_CHECK(cublasLtMatrixLayoutCreate(&c, f32_out ? CUDA_R_32F : CUDA_R_16BF, n, m, n));
    cublasLtMatmulPreference_t pref = nullptr;
    LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                  sizeof(ws)));
    LT_CHECK(cublasLtMatmulAlgoGetHeuristic(h, op, a, b, c, c, pref, std::min(want, 8), algos, &num_algos));
    cublasLtMatmulPreferenceDestroy(pref);
  }
  ~LtGemm() {
    cublasLtMatrixLayoutDestroy(c);
    cublasLtMatrixLayoutDestroy(b);
    cublasLtMatrixLayoutDestroy(a);
    cublasLtMatmulDescDestroy(op);
  }
};

struct Proj {
  const char* name;
  const __nv_bfloat16* x;
  const __nv_bfloat16* w;
  int64_t n, k;
  bool into_residual;
};

struct Row {
  std::string op, cls;
  int64_t chunk_index = -1;  // -1: the same in every chunk
  double ms = 0, floor_ms = 0;
};

void emit(const char* bench, int64_t T, int64_t L, const Row& r, const char* extra = "") {
  std::printf(
      "{\"bench\":\"%s\",\"chunk\":%lld,\"prompt\":%lld,\"op\":\"%s\",\"class\":\"%s\",\"chunk_index\":%lld,"
      "\"ms\":%.4f,\"floor_ms\":%.4f%s}\n",
      bench, static_cast<long long>(T), static_cast<long long>(L), r.op.c_str(), r.cls.c_str(),
      static_cast<long long>(r.chunk_index), r.ms, r.floor_ms, extra);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> chunks{16384, 32768}, prompts{32768, 131072};
  int reps = 5, algos = 8;
  bool attention_only = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--chunks")
      chunks = parse_list(argv[i + 1]);
    else if (a == "--prompts")
      prompts = parse_list(argv[i + 1]);
    else if (a == "--reps")
      reps = std::atoi(argv[i + 1]);
    else if (a == "--algos")
      algos = std::atoi(argv[i + 1]);
    else if (a == "--attention-only")
      attention_only = std::atoi(argv[i + 1]) != 0;
    else {
      std::fprintf(stderr, "unknown flag %s (--chunks, --prompts, --reps, --algos, --attention-only)\n",
                   a.c_str());
      return 2;
    }
  }
  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, 0));
  // The attention kernel's variant, as the environment picks it (docs/cuda_prefill_notes.md).
  std::string variant;
  for (const char* v : {"LONGCTX_ATTN_SM90", "LONGCTX_ATTN_SM90_STAGES", "LONGCTX_ATTN_SM90_PBUFS",
                        "LONGCTX_ATTN_SM90_TILE_BOX", "LONGCTX_ATTN_SM90_TMA"})
    if (const char* e = std::getenv(v))
      variant += std::string(variant.empty() ? "" : " ") + (v + 17) + "=" + e;
  std::printf("{\"bench\":\"device\",\"name\":\"%s\",\"sms\":%d,\"attn_variant\":\"%s\"}\n", prop.name,
              prop.multiProcessorCount, variant.c_str());

  cublasLtHandle_t lt = nullptr;
  LT_CHECK(cublasLtCreate(&lt));
  const size_t ws_bytes = size_t{32} << 20;  // as the model (kBlasWorkspaceBytes)
  void* ws = dev_alloc<char>(ws_bytes);
  longctx::cuda::BlasContext blas{lt, ws, ws_bytes};

  // The two ceilings, as bench latency measures them.
  double gemm_tflops = 0, copy_gbps = 0;
  {
    const int64_t n = 8192;
    auto* x = random_bf16(n * n, 1, 1.0f);
    auto* w = random_bf16(n * n, 2, 1.0f);
    auto* y = dev_alloc<__nv_bfloat16>(n * n);
    longctx::cuda::LinearParams p;
    p.x = x, p.w = w, p.y = y, p.m = n, p.n = n, p.k = n;
    const double ms = time_ms([&] { LT_CHECK(longctx::cuda::linear(blas, p, nullptr)); }, 10);
    gemm_tflops = 2.0 * n * n * n / ms / 1e9;
    cudaFree(x), cudaFree(w), cudaFree(y);
    const size_t bytes = size_t{1} << 30;
    void* a = random_bf16(bytes / 2, 3, 1.0f);
    void* b = dev_alloc<char>(bytes);
    const double cms =
        time_ms([&] { CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, nullptr)); }, 10);
    copy_gbps = 2.0 * bytes / cms / 1e6;
    cudaFree(a), cudaFree(b);
    std::printf("{\"bench\":\"ceilings\",\"gemm_tflops\":%.1f,\"copy_gbps\":%.1f}\n", gemm_tflops, copy_gbps);
  }
  const double bytes_per_ms = copy_gbps * 1e6;

  int64_t max_prompt = 0;
  for (int64_t L : prompts) max_prompt = std::max(max_prompt, L);
  // One layer's weights (scaled like a trained model's, so the residual stays finite over
  // the repeats) and its paged K/V cache for the longest prompt, blocks in table order as
  // bench latency lays them out.
  auto* w_qkv = random_bf16(kQkvw * kH, 11, 0.02f);
  auto* w_o = random_bf16(kH * kQw, 12, 0.02f);
  auto* w_gu = random_bf16(2 * kInter * kH, 13, 0.02f);
  auto* w_down = random_bf16(kH * kInter, 14, 0.02f);
  float* norm_w = dev_alloc<float>(kH);
  CHECK(longctx::cuda::fill_f32(norm_w, kH, 1.0f, nullptr));
  const int64_t blocks = max_prompt / kBlock + 1;
  auto* k_cache = random_bf16(blocks * kBlock * kKvw, 21, 1.0f);
  auto* v_cache = random_bf16(blocks * kBlock * kKvw, 22, 1.0f);
  std::vector<int32_t> table(static_cast<size_t>(blocks - 1));
  for (size_t i = 0; i < table.size(); ++i) table[i] = static_cast<int32_t>(i + 1);
  auto* d_table = dev_alloc<int32_t>(table.size());
  CHECK(cudaMemcpy(d_table, table.data(), table.size() * 4, cudaMemcpyHostToDevice));
  std::vector<double> inv(kD / 2);
  for (int64_t i = 0; i < kD / 2; ++i) inv[static_cast<size_t>(i)] = std::pow(500000.0, -2.0 * i / kD);
  auto* d_inv = dev_alloc<double>(inv.size());
  CHECK(cudaMemcpy(d_inv, inv.data(), inv.size() * 8, cudaMemcpyHostToDevice));

  for (int64_t T : chunks) {
    auto* residual = dev_alloc<float>(T * kH);
    {  // a random residual stream (fp32), as the embedding would leave it
      auto* tmp = random_bf16(T * kH, 31, 1.0f);
      widen<<<1024, 256>>>(tmp, residual, T * kH);
      CHECK(cudaGetLastError());
      CHECK(cudaDeviceSynchronize());
      cudaFree(tmp);
    }
    auto* normed = dev_alloc<__nv_bfloat16>(T * kH);
    auto* qkv = random_bf16(T * kQkvw, 32, 1.0f);
    auto* attn = dev_alloc<__nv_bfloat16>(T * kQw);
    auto* gate_up = random_bf16(T * 2 * kInter, 33, 1.0f);
    auto* act = random_bf16(T * kInter, 34, 1.0f);
    auto* y_bf16 = dev_alloc<__nv_bfloat16>(T * 2 * kInter);  // the bf16-output variants' target
    auto* positions = dev_alloc<int32_t>(T);
    auto* slots = dev_alloc<int64_t>(T);
    auto* q_begin = dev_alloc<int64_t>(2);
    auto* ctx_len = dev_alloc<int64_t>(1);
    auto set_chunk = [&](int64_t c) {  // positions and slots of chunk c (slot = 16 + position)
      std::vector<int32_t> pos(static_cast<size_t>(T));
      std::vector<int64_t> sl(static_cast<size_t>(T));
      for (int64_t i = 0; i < T; ++i) {
        pos[static_cast<size_t>(i)] = static_cast<int32_t>(c * T + i);
        sl[static_cast<size_t>(i)] = kBlock + c * T + i;
      }
      const int64_t qb[2] = {0, T}, cl = (c + 1) * T;
      CHECK(cudaMemcpy(positions, pos.data(), pos.size() * 4, cudaMemcpyHostToDevice));
      CHECK(cudaMemcpy(slots, sl.data(), sl.size() * 8, cudaMemcpyHostToDevice));
      CHECK(cudaMemcpy(q_begin, qb, 16, cudaMemcpyHostToDevice));
      CHECK(cudaMemcpy(ctx_len, &cl, 8, cudaMemcpyHostToDevice));
    };
    set_chunk(0);

    // ---- GEMMs: as the model calls them, with bf16 output, and every heuristic algorithm.
    const Proj projs[] = {{"qkv_proj", normed, w_qkv, kQkvw, kH, false},
                          {"o_proj", attn, w_o, kH, kQw, true},
                          {"gate_up_proj", normed, w_gu, 2 * kInter, kH, false},
                          {"down_proj", act, w_down, kH, kInter, true}};
    CHECK(cudaMemset(attn, 0x3c, T * kQw * 2));  // bf16 ~0.01: finite, non-zero
    CHECK(longctx::cuda::rms_norm_f32(residual, nullptr, norm_w, normed, T, kH, 1e-5f, nullptr));
    std::map<std::string, double> ms_of;
    double gemm_ms = 0;
    for (const Proj& pr : projs) {
      if (attention_only) break;
      const double flops = 2.0 * T * pr.n * pr.k;
      longctx::cuda::LinearParams lp;
      lp.x = pr.x, lp.w = pr.w, lp.m = T, lp.n = pr.n, lp.k = pr.k;
      lp.y = pr.into_residual ? static_cast<void*>(residual) : static_cast<void*>(y_bf16);
      lp.y_dtype = pr.into_residual ? longctx::DType::kF32 : longctx::DType::kBF16;
      lp.accumulate = pr.into_residual;
      Row r{pr.name, "gemm", -1, 0, flops / (gemm_tflops * 1e9)};
      r.ms = time_ms([&] { LT_CHECK(longctx::cuda::linear(blas, lp, nullptr)); }, reps);
      ms_of[pr.name] = r.ms;
      gemm_ms += r.ms;
      char extra[96];
      std::snprintf(extra, sizeof extra, ",\"tflops\":%.1f,\"m\":%lld,\"n\":%lld,\"k\":%lld",
                    flops / r.ms / 1e9, static_cast<long long>(T), static_cast<long long>(pr.n),
                    static_cast<long long>(pr.k));
      emit("ttft_op", T, 0, r, extra);
      for (const bool f32 : {false, true}) {
        if (f32 && !pr.into_residual) continue;
        if (algos <= 0) break;
        LtGemm g(lt, T, pr.n, pr.k, f32, ws_bytes, algos);
        const float alpha = 1.0f, beta = f32 ? 1.0f : 0.0f;
        void* y = f32 ? static_cast<void*>(residual) : static_cast<void*>(y_bf16);
        for (int ai = 0; ai < g.num_algos; ++ai) {
          const double ms = time_ms(
              [&] {
                LT_CHECK(cublasLtMatmul(lt, g.op, &alpha, pr.w, g.a, pr.x, g.b, &beta, y, g.c, y, g.c,
                                        &g.algos[ai].algo, ws, ws_bytes, nullptr));
              },
              reps);
          std::printf(
              "{\"bench\":\"ttft_gemm_algo\",\"chunk\":%lld,\"op\":\"%s\",\"out\":\"%s\",\"algo_index\":%d,"
              "\"ms\":%.4f,\"tflops\":%.1f}\n",
              static_cast<long long>(T), pr.name, f32 ? "f32_accumulate" : "bf16", ai, ms, flops / ms / 1e9);
        }
      }
      std::fflush(stdout);
    }

    // ---- elementwise ops, each with the bytes it must move.
    double elem_ms = 0;
    auto elementwise = [&](const char* name, double bytes, const std::function<void()>& f) {
      if (attention_only) return;
      Row r{name, "elementwise", -1, time_ms(f, reps), bytes / bytes_per_ms};
      ms_of[name] = r.ms;
      elem_ms += r.ms;
      char extra[64];
      std::snprintf(extra, sizeof extra, ",\"gbps\":%.1f", bytes / r.ms / 1e6);
      emit("ttft_op", T, 0, r, extra);
    };
    elementwise("rms_norm (x2 per layer)", T * kH * (4.0 + 2.0), [&] {
      CHECK(longctx::cuda::rms_norm_f32(residual, nullptr, norm_w, normed, T, kH, 1e-5f, nullptr));
    });
    longctx::cuda::RopeKvParams rp;
    rp.q = qkv, rp.q_stride = kQkvw, rp.k = qkv + kQw, rp.v = qkv + kQw + kKvw, rp.kv_stride = kQkvw;
    rp.num_tokens = T, rp.num_q_heads = kHq, rp.num_kv_heads = kHkv, rp.head_dim = kD;
    rp.positions = positions, rp.inv_freq = d_inv, rp.slots = slots, rp.k_cache = k_cache,
    rp.v_cache = v_cache;
    elementwise("rope_kv_write", T * (2.0 * kQw * 2 + 2.0 * kKvw * 2 * 2),
                [&] { CHECK(longctx::cuda::rope_kv_write(rp, nullptr)); });
    elementwise("silu_mul", T * (2.0 * kInter * 2 + kInter * 2), [&] {
      CHECK(longctx::cuda::silu_mul(gate_up, gate_up + kInter, act, T, kInter, 2 * kInter, nullptr));
    });

    // ---- attention of every chunk of every prompt.
    longctx::cuda::PagedAttentionParams ap;
    ap.q = qkv, ap.q_stride = kQkvw, ap.out = attn, ap.k_cache = k_cache, ap.v_cache = v_cache;
    ap.block_size = kBlock, ap.num_seqs = 1, ap.q_begin = q_begin, ap.context_lens = ctx_len;
    ap.block_tables = d_table, ap.block_table_stride = static_cast<int64_t>(table.size());
    ap.max_num_q = T, ap.num_q_heads = kHq, ap.num_kv_heads = kHkv, ap.head_dim = kD;
    const int64_t max_chunks = (max_prompt + T - 1) / T;
    std::vector<double> attn_ms(static_cast<size_t>(max_chunks));
    for (int64_t c = 0; c < max_chunks; ++c) {
      set_chunk(c);
      ap.max_context_len = (c + 1) * T;
      const size_t need = longctx::cuda::paged_attention_workspace_bytes(ap, T);
      void* aws = need ? dev_alloc<char>(need) : nullptr;
      ap.workspace = aws, ap.workspace_bytes = need;
      // FLOPs: T queries × (c·T prefix keys + T causal half) × 4·Hq·d.
      const double flops = 4.0 * T * (c * T + T / 2.0) * kHq * kD;
      Row r{"attention", "attention", c, 0, flops / (gemm_tflops * 1e9)};
      r.ms = time_ms([&] { CHECK(longctx::cuda::paged_attention(ap, T, nullptr)); }, c >= 4 ? 3 : reps);
      attn_ms[static_cast<size_t>(c)] = r.ms;
      char extra[64];
      std::snprintf(extra, sizeof extra, ",\"tflops\":%.1f,\"context\":%lld", flops / r.ms / 1e9,
                    static_cast<long long>((c + 1) * T));
      emit("ttft_op", T, 0, r, extra);
      if (aws) cudaFree(aws);
    }

    // ---- the estimate per prompt: 32 layers of each chunk's ops.
    for (int64_t L : prompts) {
      if (L % T != 0) continue;
      const int64_t n = L / T;
      double attn_total = 0;
      for (int64_t c = 0; c < n; ++c) attn_total += attn_ms[static_cast<size_t>(c)];
      const double gemm_s = kLayers * n * gemm_ms / 1e3, attn_s = kLayers * attn_total / 1e3,
                   elem_s = kLayers * n * (elem_ms + ms_of["rms_norm (x2 per layer)"]) / 1e3;
      std::printf(
          "{\"bench\":\"ttft_estimate\",\"chunk\":%lld,\"prompt\":%lld,\"gemm_s\":%.4f,\"attention_s\":%.4f,"
          "\"elementwise_s\":%.4f,\"total_s\":%.4f",
          static_cast<long long>(T), static_cast<long long>(L), gemm_s, attn_s, elem_s,
          gemm_s + attn_s + elem_s);
      for (const auto& kv : ms_of)
        std::printf(",\"%s_s\":%.4f", kv.first.c_str(), kLayers * n * kv.second / 1e3);
      std::printf("}\n");
      std::fprintf(stderr,
                   "chunk %6lld prompt %6lld: gemm %.3f s  attention %.3f s  elementwise %.3f s  = %.3f s\n",
                   static_cast<long long>(T), static_cast<long long>(L), gemm_s, attn_s, elem_s,
                   gemm_s + attn_s + elem_s);
    }
    void* bufs[] = {residual, normed, qkv, attn, gate_up, act, y_bf16, positions, slots, q_begin, ctx_len};
    for (void* p : bufs) cudaFree(p);
  }
  CHECK(cudaDeviceSynchronize());
  cublasLtDestroy(lt);
  return 0;
}
