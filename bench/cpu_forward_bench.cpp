// CPU forward benchmark: prefill and decode tokens/s of a checkpoint, the share of the
// prefill spent in GEMMs, and those GEMMs against a plain OpenBLAS sgemm of the same
// shapes measured in the same run (the peer). Prints one JSON object.
//
//   longctx_bench_cpu_forward --model DIR [--prefill-tokens 512] [--decode-tokens 32] [--repeats 3] [--dtype bf16]
//
// GEMM share: each layer's four GEMMs (qkv, o, gate|up, down) and the LM head are
// replayed in isolation at the prefill's shapes with the model's weight dtype; their
// summed median time over the median prefill time is the share.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/dense_model.h"
#include "ops/cpu/linear.h"

namespace {

using Clock = std::chrono::steady_clock;
using longctx::DType;
using longctx::Tensor;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

struct GemmShape {
  const char* name;
  int64_t m, n, k;
};

Tensor random_tensor(const longctx::Shape& shape, DType dtype, uint64_t seed) {
  Tensor f = Tensor::empty(shape, DType::kF32);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-0.05f, 0.05f);
  for (int64_t i = 0; i < f.numel(); ++i) f.data<float>()[i] = u(rng);
  return f.to(dtype);
}

// Median seconds of `repeats` runs of fn after one warm-up.
template <typename F>
double time_median(int repeats, F&& fn) {
  fn();
  std::vector<double> t;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = Clock::now();
    fn();
    t.push_back(seconds_since(t0));
  }
  return median(t);
}

int usage() {
  std::fprintf(stderr,
               "usage: longctx_bench_cpu_forward --model DIR [--prefill-tokens N] [--decode-tokens N] [--repeats N] "
               "[--dtype f32|bf16|f16]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir, dtype_name;
  int64_t prefill_tokens = 512, decode_tokens = 32;
  int repeats = 3;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) return usage();
    if (a == "--model") model_dir = argv[++i];
    else if (a == "--prefill-tokens") prefill_tokens = std::stoll(argv[++i]);
    else if (a == "--decode-tokens") decode_tokens = std::stoll(argv[++i]);
    else if (a == "--repeats") repeats = std::stoi(argv[++i]);
    else if (a == "--dtype") dtype_name = argv[++i];
    else return usage();
  }
  if (model_dir.empty() || prefill_tokens < 1 || repeats < 1) return usage();

  longctx::ModelLoadOptions opts;
  if (!dtype_name.empty()) opts.dtype = longctx::parse_dtype(dtype_name).value();
  auto model = longctx::DenseModel::load(model_dir, opts);
  if (!model.is_ok()) {
    std::fprintf(stderr, "error: %s\n", model.status().to_string().c_str());
    return 1;
  }
  const auto& cfg = model->config();
  std::mt19937 rng(1);
  std::vector<int32_t> ids(static_cast<size_t>(prefill_tokens + decode_tokens));
  for (auto& id : ids) id = static_cast<int32_t>(rng() % static_cast<uint32_t>(std::min<int64_t>(cfg.vocab_size, 100000)));
  const std::vector<int64_t> last{prefill_tokens - 1}, first{0};
  const std::span<const int32_t> prompt(ids.data(), static_cast<size_t>(prefill_tokens));

  // Prefill: a fresh sequence each time.
  const double prefill_s = time_median(repeats, [&] {
    auto kv = model->new_kv(prefill_tokens + decode_tokens);
    (void)model->forward(prompt, kv, last).value();
  });

  // Decode: one token at a time after the prompt.
  std::vector<double> decode_runs;
  for (int r = 0; r < repeats; ++r) {
    auto kv = model->new_kv(prefill_tokens + decode_tokens);
    (void)model->forward(prompt, kv, last).value();
    auto t0 = Clock::now();
    for (int64_t i = 0; i < decode_tokens; ++i)
      (void)model->forward(std::span<const int32_t>(&ids[static_cast<size_t>(prefill_tokens + i)], 1), kv, first).value();
    decode_runs.push_back(seconds_since(t0));
  }
  const double decode_s = median(decode_runs);

  // GEMMs of the prefill, replayed: ours (model weight dtype) and plain sgemm (fp32).
  const DType weight_dtype = model->weight_dtype();
  const int64_t t = prefill_tokens, h = cfg.hidden_size, d = cfg.head_dim;
  const std::vector<GemmShape> shapes = {
      {"qkv", t, (cfg.num_heads + 2 * cfg.num_kv_heads) * d, h},
      {"o_proj", t, h, cfg.num_heads * d},
      {"gate_up", t, 2 * cfg.intermediate_size, h},
      {"down", t, h, cfg.intermediate_size},
  };
  double ours_layer_s = 0, peer_layer_s = 0;
  nlohmann::json gemms = nlohmann::json::array();
  for (const auto& s : shapes) {
    Tensor x = random_tensor({s.m, s.k}, DType::kF32, 1);
    Tensor w = random_tensor({s.n, s.k}, weight_dtype, 2);
    Tensor w32 = w.to(DType::kF32);
    Tensor y = Tensor::empty({s.m, s.n}, DType::kF32);
    longctx::cpu::LinearParams p;
    p.x = x.data<float>();
    p.w = w.raw();
    p.w_dtype = weight_dtype;
    p.y = y.data<float>();
    p.m = s.m;
    p.n = s.n;
    p.k = s.k;
    const double ours = time_median(repeats, [&] { longctx::cpu::linear(p); });
    const double peer = time_median(repeats, [&] {
      longctx::cpu::sgemm_nt(x.data<float>(), w32.data<float>(), y.data<float>(), s.m, s.n, s.k);
    });
    ours_layer_s += ours;
    peer_layer_s += peer;
    const double flop = 2.0 * double(s.m) * double(s.n) * double(s.k);
    gemms.push_back({{"name", s.name}, {"m", s.m}, {"n", s.n}, {"k", s.k}, {"ours_gflops", flop / ours / 1e9},
                     {"sgemm_gflops", flop / peer / 1e9}});
  }
  const double gemm_s = ours_layer_s * double(cfg.num_layers);

  nlohmann::json out = {
      {"model", model_dir},
      {"weights", longctx::dtype_name(weight_dtype)},
      {"layers", cfg.num_layers},
      {"hidden", h},
      {"prefill_tokens", t},
      {"prefill_s", prefill_s},
      {"prefill_tok_s", double(t) / prefill_s},
      {"decode_tokens", decode_tokens},
      {"decode_tok_s", double(decode_tokens) / decode_s},
      {"prefill_gemm_share", gemm_s / prefill_s},
      {"gemm_vs_sgemm", peer_layer_s / ours_layer_s},
      {"gemms", gemms},
  };
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
