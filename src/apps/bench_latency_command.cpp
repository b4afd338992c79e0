// `longctx bench latency`: end-to-end latency of the GPU model on one device — time to first
// token of long prompts (chunked prefill, --max-num-batched-tokens per step) and time per
// output token of decode batches over long contexts (CUDA graphs) — next to the physical
// floors measured in the same run: FLOPs ÷ the measured bf16 GEMM rate, bytes ÷ the
// measured device copy bandwidth. Random bf16 weights of a preset shape (llama/8b =
// Llama-3.1-8B) are made on the GPU. The transformers peer is bench/cuda/peer_latency.py,
// run right after by scripts/device/model_tests.sh on the same GPU.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/commands.h"

#ifdef LONGCTX_HAS_CUDA
#include <cuda_runtime_api.h>

#include "model/config.h"
#include "model/presets.h"
#include "model_cuda/cuda_dense_model.h"
#include "ops/cuda/fill.h"
#include "ops/cuda/linear.h"
#endif

namespace longctx::apps {
namespace {

struct BenchLatencyFlags {
  std::string preset = "llama/8b";
  std::vector<int64_t> prompt_lens{4096, 16384, 32768, 131072};
  std::vector<int64_t> batches{1, 8, 64};
  std::vector<int64_t> contexts{1024, 32768};
  int64_t max_num_batched_tokens = 16384;
  double gpu_memory_utilization = 0.9;
  int64_t decode_steps = 20;
  int64_t repeats = 2;
  std::string json_out;
};

#ifdef LONGCTX_HAS_CUDA
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// The two ceilings of METHOD.md, measured on this device before the model loads: a bf16
// GEMM 8192³ through our cuBLASLt wrapper, and a 1 GiB device-to-device copy (bytes read +
// written).
struct Ceilings {
  double gemm_flops = 0, copy_bytes_per_s = 0;
};

Result<Ceilings> measure_ceilings() {
  Ceilings c;
  const int64_t n = 8192;
  const size_t copy_bytes = size_t{1} << 30;
  void *x = nullptr, *w = nullptr, *y = nullptr, *ws = nullptr, *a = nullptr, *b = nullptr;
  auto fail = [](const char* what) { return internal_error(std::string("measuring the ceilings: ") + what); };
  if (cudaMalloc(&x, n * n * 2) || cudaMalloc(&w, n * n * 2) || cudaMalloc(&y, n * n * 2) ||
      cudaMalloc(&ws, 32 << 20) || cudaMalloc(&a, copy_bytes) || cudaMalloc(&b, copy_bytes))
    return fail("cudaMalloc");
  cuda::fill_uniform_bf16(static_cast<__nv_bfloat16*>(x), n * n, 1, 1.0f, nullptr);
  cuda::fill_uniform_bf16(static_cast<__nv_bfloat16*>(w), n * n, 2, 1.0f, nullptr);
  cuda::fill_uniform_bf16(static_cast<__nv_bfloat16*>(a), static_cast<int64_t>(copy_bytes / 2), 3, 1.0f,
                          nullptr);
  cuda::BlasContext ctx;
  cublasLtCreate(&ctx.handle);
  ctx.workspace = ws;
  ctx.workspace_bytes = 32 << 20;
  cuda::LinearParams p;
  p.x = static_cast<__nv_bfloat16*>(x), p.w = static_cast<__nv_bfloat16*>(w), p.y = y, p.m = n, p.n = n,
  p.k = n;
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<double> t;
  for (int i = 0; i < 13; ++i) {
    cudaEventRecord(e0);
    if (cuda::linear(ctx, p, nullptr) != CUBLAS_STATUS_SUCCESS) return fail("GEMM");
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    if (i >= 3) t.push_back(ms * 1e-3);
  }
  c.gemm_flops = 2.0 * n * n * n / median(t);
  t.clear();
  for (int i = 0; i < 13; ++i) {
    cudaEventRecord(e0);
    cudaMemcpyAsync(b, a, copy_bytes, cudaMemcpyDeviceToDevice, nullptr);
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    if (i >= 3) t.push_back(ms * 1e-3);
  }
  c.copy_bytes_per_s = 2.0 * static_cast<double>(copy_bytes) / median(t);
  const cudaError_t err = cudaDeviceSynchronize();
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cublasLtDestroy(ctx.handle);
  for (void* ptr : {x, w, y, ws, a, b}) cudaFree(ptr);
  if (err != cudaSuccess) return fail(cudaGetErrorString(err));
  return c;
}

int run_bench_latency(const BenchLatencyFlags& f) {
  const auto slash = f.preset.find('/');
  if (slash == std::string::npos)
    return fail("--preset must be ARCH/PRESET, e.g. llama/8b; got '" + f.preset + "'");
  auto preset = find_model_preset(f.preset.substr(0, slash), f.preset.substr(slash + 1));
  if (!preset.is_ok()) return fail(preset.status().message());
  auto cfg = parse_model_config(preset->config, "preset " + f.preset);
  if (!cfg.is_ok()) return fail(cfg.status().message());
  for (int64_t v : f.prompt_lens)
    if (v < 1) return fail("--prompt-lens values must be >= 1");
  for (int64_t v : f.batches)
    if (v < 1) return fail("--batches values must be >= 1");
  for (int64_t v : f.contexts)
    if (v < 1) return fail("--contexts values must be >= 1");

  auto ceil = measure_ceilings();
  if (!ceil.is_ok()) return fail(ceil.status().message());
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  std::fprintf(stderr, "bench latency: %s on %s; GEMM 8192^3 %.0f TFLOP/s, copy %.0f GB/s\n",
               f.preset.c_str(), prop.name, ceil->gemm_flops / 1e12, ceil->copy_bytes_per_s / 1e9);

  const int64_t bs = 16;
  int64_t max_len = 0;
  for (int64_t v : f.prompt_lens) max_len = std::max(max_len, v);
  for (int64_t v : f.contexts) max_len = std::max(max_len, v + f.decode_steps + 8);
  cuda::CudaModelOptions o;
  o.max_num_batched_tokens = f.max_num_batched_tokens;
  int64_t max_batch = 1;
  for (int64_t v : f.batches) max_batch = std::max(max_batch, v);
  o.max_num_seqs = max_batch;
  o.max_logit_rows = max_batch;
  o.block_size = bs;
  o.max_model_len = (max_len + bs - 1) / bs * bs;
  o.gpu_memory_utilization = f.gpu_memory_utilization;
  const auto t_load = Clock::now();
  auto model = cuda::CudaDenseModel::create_random(*cfg, 1234, o);
  if (!model.is_ok()) return fail(model.status().message());
  cuda::CudaDenseModel& m = **model;
  if (auto st = m.randomize_kv_cache(99); !st.is_ok()) return fail(st.message());
  std::fprintf(stderr, "model ready in %.1f s: %s\n", seconds_since(t_load),
               m.memory_plan().to_string().c_str());

  const ModelConfig& c = m.config();
  const double kv_bytes_per_token = 2.0 * c.num_layers * c.num_kv_heads * c.head_dim * 2;
  const double weight_read_bytes = static_cast<double>(cuda::device_weight_bytes(c)) -
                                   (c.tie_word_embeddings ? 0.0 : 2.0 * c.vocab_size * c.hidden_size);
  const double linear_params = (weight_read_bytes - 2.0 * c.vocab_size * c.hidden_size) / 2.0;  // per token
  nlohmann::json out;
  out["device"] = prop.name;
  out["preset"] = f.preset;
  out["gemm_tflops"] = ceil->gemm_flops / 1e12;
  out["copy_gbps"] = ceil->copy_bytes_per_s / 1e9;
  out["memory_plan"] = m.memory_plan().to_string();
  out["max_num_batched_tokens"] = f.max_num_batched_tokens;
  out["ttft"] = nlohmann::json::array();
  out["tpot"] = nlohmann::json::array();

  // TTFT: one sequence, the prompt in chunks of max_num_batched_tokens over its cached
  // prefix, greedy token of the last position back on the host.
  std::vector<int32_t> table;
  for (int64_t i = 0; i < (max_len + bs - 1) / bs + 1 && i + 1 < m.num_kv_blocks(); ++i)
    table.push_back(static_cast<int32_t>(i + 1));
  for (int64_t len : f.prompt_lens) {
    if ((len + bs - 1) / bs > static_cast<int64_t>(table.size())) {
      std::fprintf(stderr, "ttft %ld: skipped, the KV pool holds fewer tokens\n", static_cast<long>(len));
      continue;
    }
    std::vector<int32_t> ids(static_cast<size_t>(len));
    for (int64_t i = 0; i < len; ++i)
      ids[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7919 + 13) % c.vocab_size);
    // One untimed run of the first length loads the kernels and picks the GEMM algorithms.
    const bool warm_up = len == f.prompt_lens.front();
    const int reps = len >= 65536 ? 1 : static_cast<int>(f.repeats);
    std::vector<double> times;
    for (int r = 0; r < reps + (warm_up ? 1 : 0); ++r) {
      const auto t0 = Clock::now();
      for (int64_t at = 0; at < len; at += f.max_num_batched_tokens) {
        const int64_t n = std::min(f.max_num_batched_tokens, len - at);
        ForwardBatch b;
        std::vector<int32_t> tb(table.begin(), table.begin() + (at + n + bs - 1) / bs);
        b.add_sequence(ids.data() + at, n, at, tb, bs, at + n == len);
        auto tok = m.forward_greedy(b);
        if (!tok.is_ok()) return fail(tok.status().message());
      }
      const double s = seconds_since(t0);
      if (r > 0 || !warm_up) times.push_back(s);
    }
    const double ttft = median(times);
    const double flops =
        2.0 * linear_params * len + 2.0 * double(len) * len * c.num_heads * c.head_dim * c.num_layers;
    const double floor = flops / ceil->gemm_flops;
    std::fprintf(stderr, "ttft %6ld tokens: %8.3f s   floor %8.3f s (%.2fx)\n", static_cast<long>(len), ttft,
                 floor, ttft / floor);
    out["ttft"].push_back({{"prompt_tokens", len},
                           {"ours_s", ttft},
                           {"floor_s", floor},
                           {"flops", flops},
                           {"runs", times.size()}});
  }

  // TPOT: `batch` sequences at context `ctx`, decode_steps steps after 3 warm-up steps
  // (the first captures the graph). Each sequence has its own blocks when the pool holds
  // them; otherwise they share the context's blocks (a shared prefix: every sequence still
  // reads all ctx tokens of KV) and own only their tails.
  for (int64_t ctx : f.contexts) {
    for (int64_t batch : f.batches) {
      for (bool graphs : {true, false}) {
        if (!graphs && !(batch == 1 && ctx == f.contexts.front()))
          continue;  // eager once, for the graph gain
        const int64_t steps = f.decode_steps, span = ctx + steps + 8;
        const int64_t per_seq = (span + bs - 1) / bs, prefix = ctx / bs;
        const bool shared = batch * per_seq + 1 > m.num_kv_blocks();
        if (shared && prefix + batch * (per_seq - prefix) + 1 > m.num_kv_blocks()) {
          std::fprintf(stderr, "tpot b%ld ctx %ld: skipped, the KV pool is too small\n",
                       static_cast<long>(batch), static_cast<long>(ctx));
          continue;
        }
        std::vector<std::vector<int32_t>> tables(static_cast<size_t>(batch));
        int32_t next = 1;
        for (int64_t s = 0; s < batch; ++s) {
          auto& t = tables[static_cast<size_t>(s)];
          for (int64_t j = 0; j < per_seq; ++j)
            t.push_back(shared && j < prefix ? static_cast<int32_t>(1 + j) : next++);
          if (shared && s == 0) next = static_cast<int32_t>(1 + per_seq);
        }
        std::vector<double> times;
        for (int64_t step = 0; step < steps + 3; ++step) {
          ForwardBatch b;
          for (int64_t s = 0; s < batch; ++s) {
            const int32_t id = static_cast<int32_t>((s * 31 + step * 17 + 5) % c.vocab_size);
            b.add_sequence(&id, 1, ctx + step, tables[static_cast<size_t>(s)], bs, true);
          }
          const auto t0 = Clock::now();
          auto tok = m.forward_greedy(b, graphs);
          if (!tok.is_ok()) return fail(tok.status().message());
          if (step >= 3) times.push_back(seconds_since(t0));
        }
        const double tpot = median(times);
        const double bytes =
            weight_read_bytes + kv_bytes_per_token * static_cast<double>(batch) * (ctx + 3 + steps / 2);
        const double floor = bytes / ceil->copy_bytes_per_s;
        std::fprintf(stderr, "tpot b%-3ld ctx %6ld %s: %8.3f ms   floor %8.3f ms (%.2fx)%s\n",
                     static_cast<long>(batch), static_cast<long>(ctx), graphs ? "graph" : "eager", tpot * 1e3,
                     floor * 1e3, tpot / floor, shared ? "  [shared-prefix KV]" : "");
        out["tpot"].push_back({{"batch", batch},
                               {"context", ctx},
                               {"cuda_graphs", graphs},
                               {"ours_s", tpot},
                               {"floor_s", floor},
                               {"bytes", bytes},
                               {"shared_prefix_kv", shared}});
      }
    }
  }
  const std::string text = out.dump(1);
  if (!f.json_out.empty()) {
    std::ofstream os(f.json_out);
    if (!os) return fail("--json-out: cannot write " + f.json_out);
    os << text << "\n";
  }
  std::printf("%s\n", text.c_str());
  return 0;
}
#endif

}  // namespace

void add_bench_latency_command(CLI::App& app, CommandRunner& run) {
  CLI::App* bench = bench_group(app);
  CLI::App* cmd =
      bench->add_subcommand("latency", "TTFT and decode TPOT of the GPU model vs the physical floors");
  auto f = std::make_shared<BenchLatencyFlags>();
  cmd->add_option("--preset", f->preset, "ARCH/PRESET of the random-weight model (make-model presets)");
  cmd->add_option("--prompt-lens", f->prompt_lens, "prompt lengths for TTFT")->delimiter(',');
  cmd->add_option("--batches", f->batches, "decode batch sizes")->delimiter(',');
  cmd->add_option("--contexts", f->contexts, "decode context lengths")->delimiter(',');
  cmd->add_option("--max-num-batched-tokens", f->max_num_batched_tokens, "tokens per prefill step (chunk)");
  cmd->add_option("--gpu-memory-utilization", f->gpu_memory_utilization, "fraction of device memory to use");
  cmd->add_option("--decode-steps", f->decode_steps, "timed decode steps per point");
  cmd->add_option("--repeats", f->repeats, "timed runs per TTFT point (after one warm-up)");
  cmd->add_option("--json-out", f->json_out, "also write the JSON result here");
  cmd->callback([f, &run] {
#ifdef LONGCTX_HAS_CUDA
    run = [f] { return run_bench_latency(*f); };
#else
    run = [] {
      return fail(
          "bench latency needs the CUDA backend: configure with -DLONGCTX_CUDA=ON on a machine with nvcc");
    };
#endif
  });
}

}  // namespace longctx::apps
