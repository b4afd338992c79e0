// Engine benchmark: generated tokens/s at batch 1, 8 and 32 on a checkpoint (all
// requests submitted at once, greedy, fixed prompt and output lengths), and the
// scheduler's own CPU time per step with 256 running sequences (no model: the
// scheduler and KV manager alone, the part that must never bottleneck a GPU).
//
//   longctx_bench_engine --model DIR [--prompt-len 128] [--output-len 32]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/llm_engine.h"
#include "sched/scheduler.h"

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Median scheduler step time with `n` decoding sequences of `context` tokens.
double scheduler_step_s(int64_t n, int64_t context, int steps) {
  using namespace longctx;
  KVCacheManager kv({static_cast<int32_t>(n * (context + steps + 16) / 16 + 16), 16, true});
  SchedulerConfig cfg;
  cfg.max_num_batched_tokens = 8192;
  cfg.max_num_seqs = n;
  cfg.max_model_len = 1 << 20;
  Scheduler sched(cfg, kv, std::make_unique<FcfsPolicy>());
  std::vector<Request> reqs(static_cast<size_t>(n));
  std::mt19937 rng(1);
  for (int64_t i = 0; i < n; ++i) {
    Request& r = reqs[static_cast<size_t>(i)];
    r.id = i + 1;
    for (int64_t t = 0; t < context; ++t) r.token_ids.push_back(static_cast<int32_t>(rng() % 50000));
    r.num_prompt_tokens = context;
    r.max_tokens = steps + 1;
    r.arrival_time_s = double(i);
    if (auto st = sched.add_request(&r); !st.is_ok()) {
      std::fprintf(stderr, "error: %s\n", st.to_string().c_str());
      std::exit(1);
    }
  }
  // Prefill everything first (not timed), then time decode steps.
  while (true) {
    auto plan = sched.schedule(0);
    sched.on_step_done(plan);
    bool all_decoding = true;
    for (auto& r : reqs) all_decoding &= r.num_computed_tokens == r.num_tokens();
    if (all_decoding && sched.num_running() == n) break;
  }
  std::vector<double> t;
  for (int s = 0; s < steps; ++s) {
    for (auto& r : reqs) r.token_ids.push_back(1);  // the engine appends a sampled token
    auto t0 = Clock::now();
    auto plan = sched.schedule(0);
    sched.on_step_done(plan);
    t.push_back(since(t0));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir;
  int64_t prompt_len = 128, output_len = 32;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--model") model_dir = argv[i + 1];
    else if (a == "--prompt-len") prompt_len = std::stoll(argv[i + 1]);
    else if (a == "--output-len") output_len = std::stoll(argv[i + 1]);
  }
  nlohmann::json out = {{"prompt_len", prompt_len}, {"output_len", output_len}};
  out["scheduler_step_ms_256_seqs_ctx_1024"] = 1e3 * scheduler_step_s(256, 1024, 200);
  out["scheduler_step_ms_256_seqs_ctx_32768"] = 1e3 * scheduler_step_s(256, 32768, 50);
  if (!model_dir.empty()) {
    auto model = longctx::DenseModel::load(model_dir);
    if (!model.is_ok()) {
      std::fprintf(stderr, "error: %s\n", model.status().to_string().c_str());
      return 1;
    }
    out["model"] = model_dir;
    for (int64_t batch : {1, 8, 32}) {
      longctx::EngineConfig cfg;
      cfg.scheduler.max_num_seqs = batch;
      cfg.kv_cache_memory_bytes = int64_t{1} << 30;
      auto engine = longctx::LLMEngine::create(*model, nullptr, cfg).value();
      std::mt19937 rng(2);
      for (int64_t b = 0; b < batch; ++b) {
        longctx::GenerationRequest r;
        for (int64_t t = 0; t < prompt_len; ++t) r.prompt_token_ids.push_back(static_cast<int32_t>(3 + rng() % 50000));
        r.max_tokens = output_len;
        r.sampling.temperature = 0;
        r.ignore_eos = true;
        (void)engine->add_request(r).value();
      }
      auto t0 = Clock::now();
      int64_t generated = 0;
      while (engine->has_unfinished())
        for (const auto& o : engine->step()) generated += static_cast<int64_t>(o.new_token_ids.size());
      const double s = since(t0);
      out["batch_" + std::to_string(batch)] = {{"generated_tok_s", double(generated) / s},
                                               {"total_tok_s", double(generated + batch * prompt_len) / s},
                                               {"seconds", s}};
    }
  }
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
