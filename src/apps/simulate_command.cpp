// `longctx simulate`: runs a trace or a generated workload through the real scheduler
// and KV manager with the cost model in place of the executor (sim/), and prints
// TTFT/TBT/E2E per length class (short/long split at --long-threshold, or --classes).
//
//   longctx simulate --workload mix:n=500,rate=2,prompts=0.98@1k-8k+0.02@1m,out=128
//                    --preset llama/8b --gpus 8 --gpu h100 --policy lrs --adaptive-chunking
//
// Layouts take plan's flags (--tp --pp --cp --dcp --kvp --kvp-shard-tokens); --gpus is
// then a multiple of tp·pp·cp·kvp and the rest are data-parallel replicas. Without
// layout flags, --gpus N is one tensor-parallel group (tp = N). --short-pool-gpus S
// splits the GPUs into a short pool (S GPUs in --short-tp groups) and a long pool (the
// layout on the rest, its --kvp halved until it fits), routed by --long-threshold. --compare runs several variants
// (policy[+adaptive][+pools]) on the same trace; --plot writes their TTFT CDFs as SVG.
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "apps/layout_flags.h"
#include "model/config.h"
#include "model/presets.h"
#include "perf/cost_model.h"
#include "perf/hardware.h"
#include "perf/model_shape.h"
#include "sim/cdf_plot.h"
#include "sim/report.h"
#include "sim/simulator.h"
#include "sim/trace.h"

namespace longctx::apps {
namespace {

struct SimulateFlags {
  std::string trace, workload, save_trace;
  std::string model, preset;
  std::string policy = "fcfs";
  int64_t gpus = 0;
  std::string gpu = "h100";
  std::string hardware;
  ParallelConfig layout;
  int64_t short_pool_gpus = 0, short_tp = 0;
  std::string compare, plot, plot_title, requests_json_file;
  bool json = false;
  double ttft_slo = 0.5, ttft_slo_per_token = 0.0, tbt_slo = 0.1;
  double request_overhead = 0.0, idle_wake = 0.0, step_scale = 1.0;
  bool adaptive = false;
  int64_t min_chunk = 256;
  double long_prefill_share = 0.4;
  int64_t max_num_batched_tokens = 2048, max_num_seqs = 256, block_size = 16, max_model_len = 0;
  int64_t kv_cache_tokens = 0;
  int64_t long_threshold = 32768;
  std::string classes;  // --classes; empty: short/long split at long_threshold
};

// One run of the comparison: a policy, fixed or adaptive chunks, one pool or two.
struct Variant {
  std::string label, policy;
  bool adaptive = false, pools = false;
};

Result<std::vector<Variant>> parse_variants(const SimulateFlags& f) {
  std::vector<Variant> out;
  if (f.compare.empty()) {
    Variant v{f.policy, f.policy, f.adaptive, f.short_pool_gpus > 0};
    if (v.adaptive) v.label += "+adaptive";
    if (v.pools) v.label += "+pools";
    out.push_back(v);
    return out;
  }
  std::stringstream ss(f.compare);
  std::string item;
  while (std::getline(ss, item, ',')) {
    Variant v;
    v.label = item;
    std::stringstream parts(item);
    std::string part;
    std::getline(parts, v.policy, '+');
    while (std::getline(parts, part, '+')) {
      if (part == "adaptive") {
        v.adaptive = true;
      } else if (part == "pools") {
        v.pools = true;
      } else {
        return invalid_argument("--compare " + item + ": unknown modifier '" + part +
                                "' (POLICY[+adaptive][+pools], e.g. lrs+adaptive,fcfs+pools)");
      }
    }
    if (v.pools && f.short_pool_gpus <= 0)
      return invalid_argument("--compare " + item + ": +pools needs --short-pool-gpus");
    out.push_back(v);
  }
  if (out.empty()) return invalid_argument("--compare: no variants");
  return out;
}

Result<ModelConfig> load_config(const SimulateFlags& f) {
  if (!f.model.empty()) return load_model_config(f.model);
  const auto slash = f.preset.find('/');
  if (slash == std::string::npos)
    return invalid_argument("--preset " + f.preset + ": expected ARCH/NAME, e.g. llama/8b or qwen3/8b");
  auto p = find_model_preset(f.preset.substr(0, slash), f.preset.substr(slash + 1));
  if (!p.is_ok()) return p.status();
  return parse_model_config(p->config, "preset " + f.preset);
}

// A pool's cost model and KV cache, built once per run and kept alive for it.
struct PoolSetup {
  std::unique_ptr<RooflineCostModel> cost;
  SimPool pool;
};

Result<PoolSetup> make_pool(const SimulateFlags& f, const ModelShape& shape, const HardwareProfile& hw,
                            const LayoutShape& layout, int64_t gpus, const std::string& name) {
  const int64_t world = layout.world_size();
  if (gpus < world || gpus % world != 0)
    return invalid_argument(name + " pool: " + std::to_string(gpus) + " GPUs are not a multiple of the layout's " +
                            std::to_string(world) + " (" + layout.to_string() + ")");
  PoolSetup s;
  s.cost = std::make_unique<RooflineCostModel>(shape, hw, layout);
  const int64_t kv_tokens = f.kv_cache_tokens > 0 ? f.kv_cache_tokens : s.cost->kv_capacity_tokens();
  if (kv_tokens < f.block_size)
    return invalid_argument("the model's weights (" + std::to_string(shape.weight_bytes() / 1e9) +
                            " GB) leave no room for a KV cache in the " + name + " pool (" + layout.to_string() +
                            " on " + hw.name + "; add GPUs or pass --kv-cache-tokens)");
  const int64_t blocks = kv_tokens / f.block_size;
  if (blocks > INT32_MAX - 1)
    return invalid_argument("--kv-cache-tokens / --block-size exceeds 2^31 blocks: raise --block-size");
  s.pool.name = name;
  s.pool.replicas = gpus / world;
  s.pool.cost = s.cost.get();
  s.pool.kv = {static_cast<int32_t>(blocks + 1), static_cast<int32_t>(f.block_size), false};
  // The simulator prices extended-context variants (as Medha does with Llama-3-8B at
  // 10M): by default the context is limited by the KV cache, not the config.
  s.pool.max_model_len = f.max_model_len > 0 ? f.max_model_len : kv_tokens;
  return s;
}

nlohmann::json layout_json(const LayoutShape& l, int64_t replicas) {
  return {{"layout", l.to_string()}, {"tp", l.tp}, {"pp", l.pp}, {"cp", l.cp}, {"dcp", l.dcp},
          {"kvp", l.kvp}, {"kvp_shard_tokens", l.kvp_shard_tokens}, {"replicas", replicas}};
}

int run_simulate(const SimulateFlags& f) {
  auto mc = load_config(f);
  if (!mc.is_ok()) return fail(mc.status().message());
  auto hw = f.hardware.empty() ? builtin_hardware(f.gpu) : load_hardware(f.hardware);
  if (!hw.is_ok()) return fail(hw.status().message());
  auto variants = parse_variants(f);
  if (!variants.is_ok()) return fail(variants.status().message());
  if (f.block_size < 1 || (f.block_size & (f.block_size - 1)) != 0)
    return fail("--block-size must be a power of two, got " + std::to_string(f.block_size));
  std::vector<LengthClass> report_classes = default_classes(f.long_threshold);
  if (!f.classes.empty()) {
    auto parsed = parse_classes(f.classes);
    if (!parsed.is_ok()) return fail(parsed.status().message());
    report_classes = std::move(*parsed);
  }

  // The layout: plan's flags, or (none given) --gpus as one TP group.
  const ParallelConfig& pc = f.layout;
  const bool layout_given = pc.tp > 1 || pc.pp > 1 || pc.cp > 1 || pc.dcp > 1 || pc.kvp > 1;
  LayoutShape layout{pc.tp, pc.pp, pc.cp, pc.dcp, pc.kvp, pc.kvp_shard_tokens};
  if (!layout_given && f.short_pool_gpus == 0) layout.tp = f.gpus > 0 ? f.gpus : 1;
  if (f.gpus < 0) return fail("--gpus must be >= 1, got " + std::to_string(f.gpus));
  if (Status st = layout.validate(); !st.is_ok()) return fail(st.message());
  {
    ParallelConfig check = pc;
    check.tp = static_cast<int>(layout.tp);
    check.block_size = f.block_size;
    if (check.kvp > 1 && check.kvp_shard_tokens == 0) check.kvp_shard_tokens = f.block_size;  // sim default
    if (Status st = ParallelLayout::validate(check, layout_dims(*mc)); !st.is_ok()) return fail(st.message());
  }
  const int64_t gpus = f.gpus > 0 ? f.gpus : layout.world_size() + f.short_pool_gpus;
  const ModelShape shape = model_shape(*mc);

  auto main_pool = make_pool(f, shape, *hw, layout, gpus, "main");
  if (!main_pool.is_ok() && !variants->front().pools) return fail(main_pool.status().message());
  // Separate pools: the short pool's TP groups, the long pool's layout on the rest.
  std::optional<PoolSetup> short_pool, long_pool;
  if (f.short_pool_gpus > 0) {
    if (f.short_pool_gpus >= gpus)
      return fail("--short-pool-gpus " + std::to_string(f.short_pool_gpus) + " leaves no GPU of --gpus " +
                  std::to_string(gpus) + " for the long pool");
    LayoutShape short_layout;
    short_layout.tp = f.short_tp > 0 ? f.short_tp : std::min<int64_t>(8, f.short_pool_gpus);
    auto sp = make_pool(f, shape, *hw, short_layout, f.short_pool_gpus, "short");
    if (!sp.is_ok()) return fail(sp.status().message());
    // The long pool keeps the layout on fewer GPUs: its KVP degree shrinks with the
    // pool (each group's shard grows to match), so --compare runs one layout flag set.
    LayoutShape long_layout = layout;
    const int64_t long_gpus = gpus - f.short_pool_gpus;
    while (long_layout.kvp > 1 && long_layout.world_size() > long_gpus) {
      long_layout.kvp_shard_tokens *= 2;
      long_layout.kvp = (long_layout.kvp + 1) / 2;
    }
    auto lp = make_pool(f, shape, *hw, long_layout, long_gpus, "long");
    if (!lp.is_ok()) return fail(lp.status().message());
    short_pool = std::move(*sp);
    long_pool = std::move(*lp);
    short_pool->pool.max_prompt_tokens = f.long_threshold;
    long_pool->pool.min_prompt_tokens = f.long_threshold;
  }

  auto trace = f.trace.empty() ? generate_workload(f.workload) : load_trace(f.trace);
  if (!trace.is_ok()) return fail(trace.status().message());
  if (!f.save_trace.empty())
    if (Status st = write_trace(f.save_trace, *trace); !st.is_ok()) return fail(st.message());

  nlohmann::json runs = nlohmann::json::array();
  std::vector<CdfSeries> series;
  for (const Variant& v : *variants) {
    SimConfig cfg;
    cfg.scheduler.max_num_batched_tokens = f.max_num_batched_tokens;
    cfg.scheduler.max_num_seqs = f.max_num_seqs;
    cfg.policy = v.policy;
    cfg.deadlines.ttft_slo_s = f.ttft_slo;
    cfg.deadlines.ttft_slo_per_token_s = f.ttft_slo_per_token;
    cfg.request_overhead_s = f.request_overhead;
    cfg.idle_wake_s = f.idle_wake;
    cfg.step_scale = f.step_scale;
    if (v.adaptive) {
      AdaptiveChunkConfig a;
      a.tbt_slo_s = f.tbt_slo;
      a.min_chunk = f.min_chunk;
      a.long_prefill_share = f.long_prefill_share;
      a.max_num_batched_tokens = f.max_num_batched_tokens;
      a.long_prefill_threshold = f.long_threshold;
      cfg.adaptive_chunking = a;
    }
    std::vector<SimPool> pools;
    if (v.pools) {
      pools = {short_pool->pool, long_pool->pool};
    } else {
      if (!main_pool.is_ok()) return fail(main_pool.status().message());
      pools = {main_pool->pool};
    }
    auto res = simulate_pools(*trace, cfg, pools);
    if (!res.is_ok()) return fail(v.label + ": " + res.status().message());
    res->policy = v.label;
    const auto classes = summarize(*res, report_classes);
    nlohmann::json j = to_json(*res, classes);
    j["adaptive_chunking"] = v.adaptive;
    j["pools"] = nlohmann::json::array();
    for (const SimPool& p : pools) {
      const auto* cost = static_cast<const RooflineCostModel*>(p.cost);
      nlohmann::json pj = layout_json(cost->layout(), p.replicas);
      pj["name"] = p.name;
      pj["kv_cache_tokens_per_replica"] = static_cast<int64_t>(p.kv.num_blocks - 1) * p.kv.block_size;
      j["pools"].push_back(pj);
    }
    runs.push_back(j);
    if (!f.requests_json_file.empty()) {  // the last variant's requests
      std::ofstream rq(f.requests_json_file);
      rq << requests_json(*res).dump() << "\n";
      if (!rq) return fail("--requests-json: cannot write " + f.requests_json_file);
    }
    if (!f.json) std::printf("%s\n", format_table(*res, classes).c_str());
    const int colour = static_cast<int>(&v - variants->data());
    CdfSeries s_short{v.label + " short", {}, false, colour}, s_long{v.label + " long", {}, true, colour};
    for (const SimRequest& q : res->requests)
      if (!q.rejected && q.first_token_s >= 0)
        (q.prompt_tokens >= f.long_threshold ? s_long : s_short).values.push_back(q.ttft_s());
    series.push_back(std::move(s_short));
    if (!s_long.values.empty()) series.push_back(std::move(s_long));
  }
  if (!f.plot.empty()) {
    CdfPlotOptions opt;
    opt.title = f.plot_title.empty() ? "TTFT CDF: " + (f.model.empty() ? f.preset : f.model) + ", " +
                                           std::to_string(gpus) + " x " + hw->name
                                     : f.plot_title;
    std::ofstream out(f.plot);
    out << cdf_svg(series, opt);
    if (!out) return fail("--plot: cannot write " + f.plot);
  }
  if (f.json) {
    nlohmann::json j;
    j["model"] = f.model.empty() ? f.preset : f.model;
    j["hardware"] = to_json(*hw);
    j["gpus"] = gpus;
    j["requests"] = trace->size();
    if (f.compare.empty()) {  // one run: its fields at the top level, as before
      for (auto& [k, v] : runs[0].items()) j[k] = v;
      j["kv_cache_tokens"] = j["pools"][0]["kv_cache_tokens_per_replica"];
    } else {
      j["runs"] = runs;
    }
    std::printf("%s\n", j.dump().c_str());
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
  cmd->add_option("--gpus", f->gpus,
                  "Devices (default: the layout's tp·pp·cp·kvp; without layout flags, one TP group of N)");
  add_layout_flags(*cmd, f->layout);
  cmd->add_option("--short-pool-gpus", f->short_pool_gpus,
                  "Separate pools: this many GPUs serve prompts below --long-threshold, the rest the long ones");
  cmd->add_option("--short-tp", f->short_tp, "TP group size of the short pool's replicas (default min(8, pool))");
  cmd->add_option("--compare", f->compare,
                  "Variants to run on the same trace: POLICY[+adaptive][+pools], comma-separated");
  cmd->add_option("--plot", f->plot, "Write TTFT CDFs (short solid, long dashed) per variant as SVG");
  cmd->add_option("--requests-json", f->requests_json_file,
                  "Write every request's TTFT, TBTs and E2E as a JSON array (the last --compare variant)");
  cmd->add_option("--plot-title", f->plot_title, "Title of the --plot figure");
  cmd->add_option("--gpu", f->gpu, "Built-in hardware profile: cpu | h100 | h200")->capture_default_str();
  cmd->add_option("--hardware", f->hardware, "Hardware profile JSON file (instead of --gpu; `bench profile` writes one)");
  cmd->add_flag("--json", f->json, "Print the summary as one JSON object");
  cmd->add_option("--ttft-slo", f->ttft_slo, "Base TTFT deadline, seconds (edf, lrs)")->capture_default_str();
  cmd->add_option("--request-overhead", f->request_overhead,
                  "Seconds a request spends in the serving path before the scheduler sees it (counted in TTFT)")
      ->capture_default_str();
  cmd->add_option("--step-scale", f->step_scale,
                  "Multiply every step's priced time (the engine's steps under a serving load vs the profile)")
      ->capture_default_str();
  cmd->add_option("--idle-wake", f->idle_wake, "Seconds the first step after an idle engine costs beyond its price")
      ->capture_default_str();
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
                  "KV cache size in tokens per replica (0: device memory - weights)");
  cmd->add_option("--long-threshold", f->long_threshold,
                  "Prompt tokens from which a request is 'long' (report classes, --long-prefill-share, pools)")
      ->capture_default_str();
  cmd->add_option("--classes", f->classes,
                  "Report classes by prompt tokens, NAME:LO-HI,... (HI may be left out), e.g. "
                  "short:0-32768,long:32768- (default: short/long split at --long-threshold)");
  cmd->callback([f, &run] {
    run = [f] {
      if (f->trace.empty() == f->workload.empty()) return fail("simulate needs one of --trace or --workload");
      if (f->model.empty() == f->preset.empty()) return fail("simulate needs one of --model or --preset");
      return run_simulate(*f);
    };
  });
}

}  // namespace longctx::apps
