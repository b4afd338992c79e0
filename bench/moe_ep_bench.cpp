// CPU benchmark of one MoE layer spread over ranks (model/sharded_moe_mlp.h): the routed
// MLP on N host ranks (threads of this process) with the experts TP-split (--ep 1, every
// expert's intermediate dim over N) or expert-parallel (--ep N, whole experts, tokens
// dispatched by all-to-all), beside the single-rank layer in the same run.
//
// What is measured: each rank's thread CPU time for one layer forward plus the FFN
// all-reduce (a rank blocked in a collective sleeps on a condition variable, so its
// clock stops). The machine is shared and loaded (docs/benchmarks.md), so wall time is
// noise; per-rank CPU time is the work each rank would do on its own core. Reported:
//   critical_ms — the slowest rank's CPU time (the layer's time with ideal links);
//   total_ms    — the sum over ranks (the work, including dispatch packing and grouping);
//   tok_s       — tokens / critical path; speedup — single-rank CPU time / critical path.
// Each rank runs one OpenMP/OpenBLAS thread (RunOptions::threads_per_rank = 1), so its
// thread CPU time is all of its work.
//
//   longctx_bench_moe_ep --config DIR|ARCH/PRESET [--dtype f32|bf16] [--tokens 16,256,2048]
//                        [--ranks 2,4] [--repeats 5]
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
#include "model/sharded_moe_mlp.h"
#include "moe_common.h"
#include "parallel/host_communicator.h"
#include "parallel/parallel_layout.h"
#include "parallel/rank_communicators.h"

namespace {

using namespace longctx::bench;
using longctx::DType;
using longctx::Tensor;

double thread_cpu_seconds() { return clock_seconds(CLOCK_THREAD_CPUTIME_ID); }

struct LayoutTiming {
  double critical_s = 0, total_s = 0, wall_s = 0;
};

// `repeats` samples of one layer forward on every rank of `pc` (after one warm-up); per
// sample the slowest rank's and the summed CPU time; medians over samples.
LayoutTiming time_layout(const longctx::ModelConfig& cfg, const longctx::DenseLayerWeights& full,
                         const longctx::ParallelConfig& pc, const Tensor& x, int64_t t, int repeats) {
  const longctx::ParallelLayout layout =
      longctx::ParallelLayout::create(pc, {0, 0, 0, cfg.num_experts}).value();
  const int n = layout.world_size();
  std::vector<std::vector<double>> cpu(static_cast<size_t>(n)), wall(static_cast<size_t>(n));
  longctx::HostWorld world(n);
  longctx::RunOptions one_thread;
  one_thread.threads_per_rank = 1;  // else run_on_ranks gives each rank cores / N OpenMP threads
  const longctx::Status st = longctx::run_on_ranks(
      world,
      [&](int r) -> longctx::Status {
        longctx::DenseLayerWeights lw;
        LONGCTX_RETURN_IF_ERROR(
            longctx::shard_moe_layer(cfg, full, layout, r, pc.tp, layout.coords(r).tp, lw));
        longctx::RankCommunicators comms = longctx::RankCommunicators::host(world, layout, r);
        std::vector<float> out(static_cast<size_t>(t * cfg.hidden_size));
        for (int s = -1; s < repeats; ++s) {
          comms.world->barrier();
          const double c0 = thread_cpu_seconds();
          const auto w0 = std::chrono::steady_clock::now();
          longctx::sharded_moe_mlp_forward(cfg, lw, x.data<float>(), t, *comms.tp, nullptr, comms.ep.get(),
                                           out.data());
          comms.tp->all_reduce_sum(out.data(), t * cfg.hidden_size);
          if (s < 0) continue;  // warm-up
          cpu[size_t(r)].push_back(thread_cpu_seconds() - c0);
          wall[size_t(r)].push_back(
              std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count());
        }
        return longctx::Status::ok();
      },
      one_thread);
  if (!st.is_ok()) {
    std::fprintf(stderr, "layout %s: %s\n", layout.to_string().c_str(), st.message().c_str());
    std::exit(1);
  }
  std::vector<double> crit, total, w;
  for (int s = 0; s < repeats; ++s) {
    double mx = 0, sum = 0, wmx = 0;
    for (int r = 0; r < n; ++r) {
      mx = std::max(mx, cpu[size_t(r)][size_t(s)]);
      sum += cpu[size_t(r)][size_t(s)];
      wmx = std::max(wmx, wall[size_t(r)][size_t(s)]);
    }
    crit.push_back(mx);
    total.push_back(sum);
    w.push_back(wmx);
  }
  return {median(crit), median(total), median(w)};
}

int usage() {
  std::fprintf(
      stderr,
      "usage: longctx_bench_moe_ep --config DIR|ARCH/PRESET [--dtype f32|bf16] [--tokens 16,256,2048] "
      "[--ranks 2,4] [--repeats 5]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_spec, dtype_name = "f32", tokens_list = "16,256,2048", ranks_list = "2,4",
                           repeats_arg = "5";
  if (!parse_flags(argc, argv,
                   {{"--config", &config_spec},
                    {"--dtype", &dtype_name},
                    {"--tokens", &tokens_list},
                    {"--ranks", &ranks_list},
                    {"--repeats", &repeats_arg}}))
    return usage();
  const int repeats = std::stoi(repeats_arg);
  if (config_spec.empty() || repeats < 1) return usage();
  const std::optional<DType> weights = weight_dtype(dtype_name);
  if (!weights) return 2;
  const std::optional<longctx::ModelConfig> moe_cfg = moe_config(config_spec);
  if (!moe_cfg) return 2;
  const longctx::ModelConfig& cfg = *moe_cfg;
  const int64_t h = cfg.hidden_size, mi = cfg.moe_intermediate_size, e_count = cfg.num_experts;
  const longctx::DenseLayerWeights full = random_moe_layer(cfg, *weights);

  for (int64_t t : parse_list(tokens_list)) {
    const Tensor x = random_tensor({t, h}, DType::kF32, 7 + static_cast<uint64_t>(t), 1.0f);
    longctx::ParallelConfig one;
    const LayoutTiming single = time_layout(cfg, full, one, x, t, repeats);
    for (int64_t n : parse_list(ranks_list)) {
      for (const bool ep : {false, true}) {
        longctx::ParallelConfig pc;
        pc.tp = static_cast<int>(n);
        pc.ep = ep ? static_cast<int>(n) : 1;
        if (ep && e_count % n != 0) continue;
        if (!ep && mi % n != 0) continue;
        const LayoutTiming lt = time_layout(cfg, full, pc, x, t, repeats);
        nlohmann::json j = {
            {"bench", "moe_ep_layer"},
            {"config", config_spec},
            {"hidden", h},
            {"experts", e_count},
            {"top_k", cfg.num_experts_per_tok},
            {"moe_intermediate", mi},
            {"weights", dtype_name},
            {"tokens", t},
            {"ranks", n},
            {"split", ep ? "ep" : "tp"},
            {"repeats", repeats},
            {"single_ms", 1e3 * single.critical_s},
            {"critical_ms", 1e3 * lt.critical_s},
            {"total_ms", 1e3 * lt.total_s},
            {"tok_s", static_cast<double>(t) / lt.critical_s},
            {"single_tok_s", static_cast<double>(t) / single.critical_s},
            {"speedup", single.critical_s / lt.critical_s},
            {"work_ratio", lt.total_s / single.critical_s},
            {"wall_ms", 1e3 * lt.wall_s},
            {"clock", "thread CPU time per rank"},
            {"threads", std::getenv("OMP_NUM_THREADS") ? std::getenv("OMP_NUM_THREADS") : "unset"}};
        std::printf("%s\n", j.dump().c_str());
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
