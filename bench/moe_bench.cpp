// CPU MoE layer benchmark: tokens/s of one routed MLP forward (router GEMM, softmax top-k,
// grouping of tokens per expert, one gate_up and one down GEMM per expert, weighted
// scatter-add — model/moe_mlp.h, the engine's own path) beside its floor measured in the
// same run: a dense MLP of width top_k × moe_intermediate (the same active FLOPs and, for
// one token, the same weight bytes) through the same cpu::linear / OpenBLAS. The ratio
// floor time / MoE time says what routing and grouping cost. Times are process CPU time
// (the machine is shared; see time_pair), wall time is reported beside. Prints one JSON
// object per token count.
//
//   longctx_bench_moe --config DIR_OR_PRESET [--dtype f32|bf16] [--tokens 1,16,256,2048] [--repeats 3]
//
// --config: a model directory / config.json (e.g. tests/data/hf/qwen3_moe, the fixture),
// or a make-model preset ARCH/NAME (e.g. qwen3_moe/30b-a3b). Weights and inputs are
// seeded random (router included, so routing is near-balanced); the layer's shape and
// routing rules come from the config.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/dense_weights.h"
#include "model/moe_mlp.h"
#include "model/weight_linear.h"
#include "moe_common.h"
#include "ops/cpu/activation.h"

namespace {

using namespace longctx::bench;
using Clock = std::chrono::steady_clock;
using longctx::DType;
using longctx::Tensor;

// Process CPU time: on a loaded shared machine a descheduled thread stops this clock but
// not the wall clock. Run single-threaded (run_moe.sh sets OMP/OPENBLAS_NUM_THREADS=1) it
// is the time one core spends on the work.
double cpu_seconds() { return clock_seconds(CLOCK_PROCESS_CPUTIME_ID); }

struct Timing {
  double cpu_s = 0, wall_s = 0;  // medians per call
};

// Times two calls against each other: after a warm-up of each, `repeats` samples of A
// then B, interleaved so both see the same load. A sample runs its call enough times to
// last ~50 ms, so microsecond layers (the fixture) are not all timer noise.
template <typename A, typename B>
std::pair<Timing, Timing> time_pair(int repeats, A&& a, B&& b) {
  auto calibrate = [](auto& fn) {
    const double t0 = cpu_seconds();
    fn();
    return static_cast<int>(std::clamp(0.05 / std::max(cpu_seconds() - t0, 1e-7), 1.0, 100000.0));
  };
  const int inner_a = calibrate(a), inner_b = calibrate(b);
  std::vector<double> ca, wa, cb, wb;
  auto sample = [](auto& fn, int inner, std::vector<double>& c, std::vector<double>& w) {
    const double c0 = cpu_seconds();
    const auto w0 = Clock::now();
    for (int i = 0; i < inner; ++i) fn();
    w.push_back(std::chrono::duration<double>(Clock::now() - w0).count() / inner);
    c.push_back((cpu_seconds() - c0) / inner);
  };
  for (int r = 0; r < repeats; ++r) {
    sample(a, inner_a, ca, wa);
    sample(b, inner_b, cb, wb);
  }
  return {{median(ca), median(wa)}, {median(cb), median(wb)}};
}

int usage() {
  std::fprintf(
      stderr,
      "usage: longctx_bench_moe --config DIR|ARCH/PRESET [--dtype f32|bf16] [--tokens 1,16,256,2048] "
      "[--repeats 3]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_spec, dtype_name = "f32", tokens_list = "1,16,256,2048", repeats_arg = "3";
  if (!parse_flags(argc, argv,
                   {{"--config", &config_spec},
                    {"--dtype", &dtype_name},
                    {"--tokens", &tokens_list},
                    {"--repeats", &repeats_arg}}))
    return usage();
  const int repeats = std::stoi(repeats_arg);
  if (config_spec.empty() || repeats < 1) return usage();
  const std::optional<DType> weights = weight_dtype(dtype_name);
  if (!weights) return 2;
  const DType dtype = *weights;
  const std::optional<longctx::ModelConfig> moe_cfg = moe_config(config_spec);
  if (!moe_cfg) return 2;
  const longctx::ModelConfig& cfg = *moe_cfg;
  const std::vector<int64_t> token_counts = parse_list(tokens_list);

  const int64_t h = cfg.hidden_size, mi = cfg.moe_intermediate_size, e_count = cfg.num_experts;
  const int64_t k = cfg.num_experts_per_tok;
  const longctx::DenseLayerWeights lw = random_moe_layer(cfg, dtype);
  // The floor: one dense MLP of width top_k × moe_intermediate (+ the shared experts).
  const int64_t dense_inter =
      k * mi + (cfg.arch == longctx::Architecture::kDeepseekV3 ? cfg.n_shared_experts * mi : 0);
  const Tensor floor_gate_up = random_tensor({2 * dense_inter, h}, dtype, 5, 0.05f);
  const Tensor floor_down = random_tensor({h, dense_inter}, dtype, 6, 0.05f);

  for (int64_t t : token_counts) {
    const Tensor x = random_tensor({t, h}, DType::kF32, 7 + static_cast<uint64_t>(t), 1.0f);
    std::vector<float> residual(static_cast<size_t>(t * h), 0.0f);
    std::vector<float> gate_up(static_cast<size_t>(t * 2 * dense_inter)),
        act(static_cast<size_t>(t * dense_inter));
    const auto [moe, dense] = time_pair(
        repeats, [&] { longctx::moe_mlp_forward(cfg, lw, x.data<float>(), t, residual.data()); },
        [&] {
          longctx::weight_linear(x.data<float>(), t, floor_gate_up, gate_up.data());
          longctx::cpu::silu_mul(gate_up.data(), gate_up.data() + dense_inter, act.data(), t, dense_inter,
                                 2 * dense_inter);
          longctx::weight_linear(act.data(), t, floor_down, residual.data(), {}, /*accumulate=*/true);
        });
    const double moe_s = moe.cpu_s, floor_s = dense.cpu_s;
    const double flops = 2.0 * static_cast<double>(t) * 3.0 * static_cast<double>(h * dense_inter);
    nlohmann::json j = {
        {"bench", "moe_layer"},
        {"config", config_spec},
        {"model_type", cfg.model_type},
        {"hidden", h},
        {"experts", e_count},
        {"top_k", k},
        {"moe_intermediate", mi},
        {"shared_experts", cfg.n_shared_experts},
        {"weights", dtype_name},
        {"tokens", t},
        {"repeats", repeats},
        {"moe_s", moe_s},
        {"moe_tok_s", static_cast<double>(t) / moe_s},
        {"moe_gflops", flops / moe_s / 1e9},
        {"floor_s", floor_s},
        {"floor_tok_s", static_cast<double>(t) / floor_s},
        {"floor_gflops", flops / floor_s / 1e9},
        {"floor_over_moe", floor_s / moe_s},
        {"clock", "process CPU time"},
        {"moe_wall_s", moe.wall_s},
        {"floor_wall_s", dense.wall_s},
        {"threads", std::getenv("OMP_NUM_THREADS") ? std::getenv("OMP_NUM_THREADS") : "unset"}};
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
  }
  return 0;
}
