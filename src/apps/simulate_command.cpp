// `longctx simulate`: runs a trace or a generated workload through the real scheduler
// and KV manager with the cost model in place of the executor (sim/), and prints
// TTFT/TBT/E2E per length class.
//
//   longctx simulate --workload mix:n=500,rate=2,prompts=0.98@1k-8k+0.02@1m,out=128
//                    --preset llama/8b --gpus 8 --gpu h100 --policy lrs --adaptive-chunking
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "apps/commands.h"
#include "model/config.h"
#include "model/presets.h"
#include "perf/cost_model.h"
#include "perf/hardware.h"
#include "perf/model_shape.h"
#include "sim/report.h"
#include "sim/simulator.h"
#include "sim/trace.h"

namespace longctx::apps {
namespace {

struct SimulateFlags {
  std::string trace, workload, save_trace;
  std::string model, preset;
  std::string policy = "fcfs";
  int64_t gpus = 1;
  std::string gpu = "h100";
  std::string hardware;
  bool json = false;
  double ttft_slo = 0.5, ttft_slo_per_token = 0.0, tbt_slo = 0.1;
  bool adaptive = false;
  int64_t min_chunk = 256;
  double long_prefill_share = 0.4;
  int64_t max_num_batched_tokens = 2048, max_num_seqs = 256, block_size = 16, max_model_len = 0;
  int64_t kv_cache_tokens = 0;
  int64_t long_threshold = 32768;
};

Result<ModelConfig> load_config(const SimulateFlags& f) {
  if (!f.model.empty()) return load_model_config(f.model);
  const auto slash = f.preset.find('/');
  if (slash == std::string::npos)
    return invalid_argument("--preset " + f.preset + ": expected ARCH/NAME, e.g. llama/8b or qwen3/8b");
  auto p = find_model_preset(f.preset.substr(0, slash), f.preset.substr(slash + 1));
  if (!p.is_ok()) return p.status();
  return parse_model_config(p->config, "preset " + f.preset);
}

int run_simulate(const SimulateFlags& f) {
  auto mc = load_config(f);
  if (!mc.is_ok()) return fail(mc.status().message());
  auto hw = f.hardware.empty() ? builtin_hardware(f.gpu) : load_hardware(f.hardware);
  if (!hw.is_ok()) return fail(hw.status().message());
  if (f.gpus < 1) return fail("--gpus must be >= 1, got " + std::to_string(f.gpus));
  const RooflineCostModel cost(model_shape(*mc), *hw, f.gpus);

  auto trace = f.trace.empty() ? generate_workload(f.workload) : load_trace(f.trace);
  if (!trace.is_ok()) return fail(trace.status().message());
  if (!f.save_trace.empty())
    if (Status st = write_trace(f.save_trace, *trace); !st.is_ok()) return fail(st.message());

  if (f.block_size < 1 || (f.block_size & (f.block_size - 1)) != 0)
    return fail("--block-size must be a power of two, got " + std::to_string(f.block_size));
  const int64_t kv_tokens = f.kv_cache_tokens > 0 ? f.kv_cache_tokens : cost.kv_capacity_tokens();
  if (kv_tokens < f.block_size)
    return fail("the model's weights (" + std::to_string(model_shape(*mc).weight_bytes() / 1e9) +
                " GB) leave no room for a KV cache on " + std::to_string(f.gpus) + " x " + hw->name +
                " (raise --gpus or pass --kv-cache-tokens)");
  const int64_t blocks = kv_tokens / f.block_size;
  if (blocks > INT32_MAX - 1)
    return fail("--kv-cache-tokens / --block-size exceeds 2^31 blocks: raise --block-size");

  SimConfig cfg;
  cfg.scheduler.max_num_batched_tokens = f.max_num_batched_tokens;
  cfg.scheduler.max_num_seqs = f.max_num_seqs;
  // The simulator prices extended-context variants (as Medha does with Llama-3-8B at
  // 10M): by default the context is limited by the KV cache, not the config.
  cfg.scheduler.max_model_len = f.max_model_len > 0 ? f.max_model_len : kv_tokens;
  cfg.kv = {static_cast<int32_t>(blocks + 1), static_cast<int32_t>(f.block_size), false};
  cfg.policy = f.policy;
  cfg.deadlines.ttft_slo_s = f.ttft_slo;
  cfg.deadlines.ttft_slo_per_token_s = f.ttft_slo_per_token;
  if (f.adaptive) {
    AdaptiveChunkConfig a;
    a.tbt_slo_s = f.tbt_slo;
    a.min_chunk = f.min_chunk;
    a.long_prefill_share = f.long_prefill_share;
    a.max_num_batched_tokens = f.max_num_batched_tokens;
    a.long_prefill_threshold = f.long_threshold;
    cfg.adaptive_chunking = a;
  }
  auto res = simulate(*trace, cfg, cost);
  if (!res.is_ok()) return fail(res.status().message());
  const auto classes = summarize(*res, f.long_threshold);
  if (f.json) {
    nlohmann::json j = to_json(*res, classes);
    j["model"] = f.model.empty() ? f.preset : f.model;
    j["hardware"] = to_json(*hw);
    j["gpus"] = f.gpus;
    j["adaptive_chunking"] = f.adaptive;
    j["kv_cache_tokens"] = kv_tokens;
    j["requests"] = trace->size();
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s", format_table(*res, classes).c_str());
  }
  return 0;
}

}  // namespace

void add_simulate_command(CLI::App& app, CommandRunner& run) {
  auto f = std::make_shared<SimulateFlags>();
  CLI::App* cmd = app.add_subcommand("simulate", "Simulate a trace with the real scheduler and a cost model");
  auto* trace = cmd->add_option("--trace", f->trace,
                                "JSON lines {\"arrival_s\", \"prompt_tokens\", \"output_tokens\"}");
  auto* workload =
      cmd->add_option("--workload", f->workload,
                      "Generated workload, e.g. mix:n=500,rate=2,prompts=0.98@1k-8k+0.02@1m,out=128-512");
  trace->excludes(workload);
  cmd->add_option("--save-trace", f->save_trace, "Write the requests simulated as a trace file");
  auto* model = cmd->add_option("--model", f->model, "Model directory (its config.json gives the shapes)");
  auto* preset = cmd->add_option("--preset", f->preset, "Model preset ARCH/NAME, e.g. llama/8b, qwen3/8b");
  model->excludes(preset);
  cmd->add_option("--policy", f->policy, "fcfs | srpt | edf | lrs")->capture_default_str();
  cmd->add_option("--gpus", f->gpus, "Devices, one tensor-parallel group")->capture_default_str();
  cmd->add_option("--gpu", f->gpu, "Built-in hardware profile: cpu | h100 | h200")->capture_default_str();
  cmd->add_option("--hardware", f->hardware, "Hardware profile JSON file (instead of --gpu)");
  cmd->add_flag("--json", f->json, "Print the summary as one JSON object");
  cmd->add_option("--ttft-slo", f->ttft_slo, "Base TTFT deadline, seconds (edf, lrs)")->capture_default_str();
  cmd->add_option("--ttft-slo-per-token", f->ttft_slo_per_token, "TTFT allowance per prompt token, seconds")
      ->capture_default_str();
  cmd->add_option("--tbt-slo", f->tbt_slo, "Step time that adaptive chunks keep within, seconds")
      ->capture_default_str();
  cmd->add_flag("--adaptive-chunking", f->adaptive,
                "Size prefill chunks by the cost model to meet --tbt-slo");
  cmd->add_option("--min-chunk", f->min_chunk, "Smallest adaptive chunk, tokens")->capture_default_str();
  cmd->add_option("--long-prefill-share", f->long_prefill_share,
                  "Share of the token budget a long prefill may take per step (adaptive chunking)")
      ->capture_default_str();
  cmd->add_option("--max-num-batched-tokens", f->max_num_batched_tokens, "Token budget per step")
      ->capture_default_str();
  cmd->add_option("--max-num-seqs", f->max_num_seqs, "Running requests at most")->capture_default_str();
  cmd->add_option("--block-size", f->block_size, "KV block size, tokens")->capture_default_str();
  cmd->add_option("--max-model-len", f->max_model_len, "Context limit (0: what the KV cache holds)");
  cmd->add_option("--kv-cache-tokens", f->kv_cache_tokens,
                  "KV cache size in tokens (0: device memory - weights)");
  cmd->add_option("--long-threshold", f->long_threshold,
                  "Prompt tokens from which a request is 'long' (report classes, --long-prefill-share)")
      ->capture_default_str();
  cmd->callback([f, &run] {
    run = [f] {
      if (f->trace.empty() == f->workload.empty()) return fail("simulate needs one of --trace or --workload");
      if (f->model.empty() == f->preset.empty()) return fail("simulate needs one of --model or --preset");
      return run_simulate(*f);
    };
  });
}

}  // namespace longctx::apps
