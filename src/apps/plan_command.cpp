// `longctx plan`: prices the parallel layouts of a model on a cluster (perf/planner.h)
// and recommends one, with the reasoning. Given the layout flags (the same as generate's
// and serve's, apps/layout_flags.h) it also validates and prices that layout.
//
//   longctx plan --model DIR --gpus 8 --gpu-mem 141 --context 131072 [--batch 4] [--json]
//                [--tp 8 --dcp 8 ...]
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "apps/commands.h"
#include "apps/layout_flags.h"
#include "model/config.h"
#include "model/presets.h"
#include "perf/planner.h"

namespace longctx::apps {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

struct PlanFlags {
  std::string model, preset;
  int64_t gpus = 1;
  double gpu_mem_gib = 80;
  double gpu_mem_util = 0.9;
  int64_t context = 0;
  int64_t batch = 1;
  int64_t max_tp = 8;
  double weight_bytes = 2, kv_bytes = 2;
  bool json = false;
  ParallelConfig layout;  // a layout to price besides the candidates (all 1: none)

  bool has_layout() const {
    return layout.tp * layout.pp * layout.cp * layout.kvp > 1 || layout.dcp > 1;
  }
};

Result<ModelConfig> load_config(const PlanFlags& f) {
  if (!f.model.empty()) return load_model_config(f.model);
  if (f.preset.empty()) return invalid_argument("give --model DIR or --preset ARCH/NAME");
  const auto slash = f.preset.find('/');
  if (slash == std::string::npos)
    return invalid_argument("--preset " + f.preset + ": expected ARCH/NAME, e.g. llama/8b or qwen3/8b");
  auto p = find_model_preset(f.preset.substr(0, slash), f.preset.substr(slash + 1));
  if (!p.is_ok()) return p.status();
  return parse_model_config(p->config, "preset " + f.preset);
}

nlohmann::json layout_json(const PlannedLayout& l) {
  return {{"flags", l.flags()},
          {"tp", l.tp},
          {"dcp", l.dcp},
          {"cp", l.cp},
          {"kvp", l.kvp},
          {"pp", l.pp},
          {"kvp_shard_tokens", l.kvp_shard_tokens},
          {"weights_bytes_per_rank", l.weights_bytes_per_rank},
          {"kv_bytes_per_token_per_rank", l.kv_bytes_per_token_per_rank},
          {"kv_duplication", l.kv_duplication},
          {"weights_fit", l.weights_fit},
          {"max_context_tokens", l.max_context_tokens},
          {"max_batch", l.max_batch}};
}

void print_text(const Plan& p, const PlanFlags& f) {
  std::printf("model: %s   cluster: %lld x %.0f GiB (%.0f%% usable)   request: %lld x %lld tokens\n",
              f.model.empty() ? f.preset.c_str() : f.model.c_str(), static_cast<long long>(f.gpus),
              f.gpu_mem_gib, f.gpu_mem_util * 100, static_cast<long long>(f.batch),
              static_cast<long long>(f.context));
  std::printf("weights: %.1f GiB   kv_bytes_per_token: %.0f   kv heads H: %lld\n\n", p.weights_bytes / kGiB,
              p.kv_bytes_per_token, static_cast<long long>(p.num_kv_heads));
  std::printf("%-22s %14s %8s %12s %10s\n", "layout", "weights/rank", "kv dup", "max context", "max batch");
  for (const PlannedLayout& l : p.candidates)
    std::printf("%-22s %10.1f GiB %7lldx %12lld %10lld%s\n", l.flags().c_str(),
                l.weights_bytes_per_rank / kGiB, static_cast<long long>(l.kv_duplication),
                static_cast<long long>(l.max_context_tokens), static_cast<long long>(l.max_batch),
                l.weights_fit ? "" : "  (weights do not fit)");
  std::printf("\nreasoning:\n");
  for (const std::string& line : p.reasoning) std::printf("  %s\n", line.c_str());
  if (p.fits)
    std::printf("\nrecommended: %s   (max context %lld tokens, max batch %lld at %lld tokens)\n",
                p.recommended.flags().c_str(), static_cast<long long>(p.recommended.max_context_tokens),
                static_cast<long long>(p.recommended.max_batch), static_cast<long long>(f.context));
}

// The user's layout, priced as the candidates are.
PlannedLayout given_layout(const PlanFlags& f, const Plan& p, const PlanRequest& req) {
  PlannedLayout l;
  l.tp = f.layout.tp;
  l.dcp = f.layout.dcp;
  l.cp = f.layout.cp;
  l.kvp = f.layout.kvp;
  l.pp = f.layout.pp;
  l.kvp_shard_tokens = f.layout.kvp_shard_tokens;
  return price_layout(p, req, l);
}

int run_plan(const PlanFlags& f) {
  auto mc = load_config(f);
  if (!mc.is_ok()) return fail(mc.status().message());
  if (f.has_layout()) {
    // An impossible layout is a usage error, as in generate and serve.
    Status st = ParallelLayout::validate(f.layout, layout_dims(*mc));
    const int64_t world = int64_t{f.layout.tp} * f.layout.pp * f.layout.cp * f.layout.kvp;
    if (st.is_ok() && world > f.gpus)
      st = invalid_argument("the layout needs tp·pp·cp·kvp = " + std::to_string(world) + " GPUs but --gpus is " +
                            std::to_string(f.gpus));
    if (!st.is_ok()) {
      std::fprintf(stderr, "error: %s\n", st.message().c_str());
      return kLayoutErrorExitCode;
    }
  }
  PlanRequest req;
  req.weight_bytes = f.weight_bytes;  // weights may be fp8 while the KV stays bf16
  req.kv_bytes = f.kv_bytes;
  req.gpus = f.gpus;
  req.gpu_memory_bytes = f.gpu_mem_gib * kGiB;
  req.memory_utilization = f.gpu_mem_util;
  req.context_tokens = f.context;
  req.batch = f.batch;
  req.max_tp = f.max_tp;
  auto plan = plan_layout(*mc, req);
  if (!plan.is_ok()) return fail(plan.status().message());
  const Plan& p = *plan;
  if (f.json) {
    nlohmann::json by_tp = nlohmann::json::object();
    for (const PlannedLayout& l : p.candidates)
      if (l.dcp == 1) by_tp[std::to_string(l.tp)] = l.kv_duplication;
    nlohmann::json j = {{"model", f.model.empty() ? f.preset : f.model},
                        {"fits", p.fits},
                        {"weights_bytes", p.weights_bytes},
                        {"kv_bytes_per_token", p.kv_bytes_per_token},
                        {"num_kv_heads", p.num_kv_heads},
                        {"usable_bytes_per_gpu", p.usable_bytes_per_gpu},
                        {"kv_duplication_by_tp", by_tp},
                        {"candidates", nlohmann::json::array()},
                        {"reasoning", p.reasoning}};
    for (const PlannedLayout& l : p.candidates) j["candidates"].push_back(layout_json(l));
    if (f.has_layout()) j["given"] = layout_json(given_layout(f, p, req));
    if (p.fits) {
      j["recommended"] = p.recommended.flags();
      j["recommended_layout"] = layout_json(p.recommended);
      j["weights_bytes_per_rank"] = p.recommended.weights_bytes_per_rank;
      j["kv_duplication"] = p.recommended.kv_duplication;
      j["max_context_tokens"] = p.recommended.max_context_tokens;
      j["max_batch"] = p.recommended.max_batch;
    } else {
      j["recommended"] = nullptr;
      j["error"] = p.error;
    }
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    print_text(p, f);
    if (f.has_layout()) {
      const PlannedLayout g = given_layout(f, p, req);
      std::printf("\ngiven: %s   weights/rank %.1f GiB, kv dup %lldx, max context %lld tokens, max batch %lld%s\n",
                  g.flags().c_str(), g.weights_bytes_per_rank / kGiB, static_cast<long long>(g.kv_duplication),
                  static_cast<long long>(g.max_context_tokens), static_cast<long long>(g.max_batch),
                  g.weights_fit ? "" : "  (weights do not fit)");
    }
  }
  return p.fits ? 0 : fail(p.error);
}

}  // namespace

void add_plan_command(CLI::App& app, CommandRunner& run) {
  auto f = std::make_shared<PlanFlags>();
  CLI::App* cmd =
      app.add_subcommand("plan", "Recommend a parallel layout (tp/dcp/cp/kvp/pp) for a model and cluster");
  auto* model = cmd->add_option("--model", f->model, "Model directory (its config.json gives the shapes)");
  auto* preset = cmd->add_option("--preset", f->preset, "Model preset ARCH/NAME, e.g. llama/8b, qwen3/8b");
  model->excludes(preset);
  cmd->add_option("--gpus", f->gpus, "GPUs available")->capture_default_str();
  cmd->add_option("--gpu-mem", f->gpu_mem_gib, "Memory per GPU, GiB")->capture_default_str();
  cmd->add_option("--gpu-mem-util", f->gpu_mem_util, "Share of GPU memory for weights + KV")
      ->capture_default_str();
  cmd->add_option("--context", f->context, "Context tokens per request")->required();
  cmd->add_option("--batch", f->batch, "Requests of --context tokens held at once")->capture_default_str();
  cmd->add_option("--max-tp", f->max_tp, "Largest TP group (GPUs of one NVLink domain)")
      ->capture_default_str();
  cmd->add_option("--weight-bytes", f->weight_bytes, "Bytes per weight (2: bf16, 1: fp8)")
      ->capture_default_str();
  cmd->add_option("--kv-bytes", f->kv_bytes, "Bytes per KV element (2: bf16)")->capture_default_str();
  cmd->add_flag("--json", f->json, "Print the plan as one JSON object");
  add_layout_flags(*cmd, f->layout);
  cmd->callback([f, &run] { run = [f] { return run_plan(*f); }; });
}

}  // namespace longctx::apps
