// `longctx bench profile`: measures this machine and writes the hardware table the cost
// model reads (perf/hardware.h; `simulate --hardware FILE`, `serve --hardware FILE`).
//
//   longctx bench profile --out cpu.json [--model DIR ...] [--quick]
//
// Microbenchmarks give the roofline rates: GEMM FLOP/s (bf16 weights through
// cpu::linear, as the model runs them, at several shapes), attention FLOP/s
// (cpu::attention; query-key pairs/s are reported too) and streaming read bandwidth.
// With --model, the real engine runs steps of known shapes (prefills of a few batch
// sizes and lengths, then decodes at growing contexts) and a non-negative least-squares
// fit of their median times (perf/step_fit.h) is stored as that model's calibration: on a CPU
// per-token work outside the GEMMs and per-sequence sampling are not roofline terms.
// Everything measured is written beside the table ("measurements").
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <optional>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "apps/commands.h"
#include "core/dtype.h"
#include "engine/llm_engine.h"
#include "model/dense_model.h"
#include "ops/cpu/attention.h"
#include "ops/cpu/linear.h"
#include "perf/cost_model.h"
#include "perf/hardware.h"
#include "perf/model_shape.h"
#include "perf/step_fit.h"
#include "text/tokenizer.h"

namespace longctx::apps {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct ProfileFlags {
  std::string out, name = "cpu-profiled";
  std::vector<std::string> models;
  bool quick = false;
  int repeats = 3;
  float temperature = 1.0f;
};

// Best time of `fn` over repetitions lasting about `budget_s` (at least 2 runs): the
// best, not the mean, because other processes share the cores.
template <typename Fn>
double best_time(Fn&& fn, double budget_s) {
  fn();  // warm-up (page faults, OpenBLAS buffers)
  double best = 1e30, total = 0;
  for (int i = 0; total < budget_s || i < 2; ++i) {
    const auto t0 = Clock::now();
    fn();
    const double t = since(t0);
    best = std::min(best, t);
    total += t;
  }
  return best;
}

nlohmann::json measure_gemm(double budget_s, double& rate) {
  nlohmann::json rows = nlohmann::json::array();
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1);
  rate = 0;
  const int64_t shapes[][3] = {{1, 2048, 1024}, {8, 2048, 1024}, {64, 2048, 1024}, {256, 2048, 1024},
                               {512, 3072, 1024}, {512, 1024, 3072}};
  for (const auto& s : shapes) {
    const int64_t m = s[0], n = s[1], k = s[2];
    std::vector<float> x(static_cast<size_t>(m * k)), y(static_cast<size_t>(m * n));
    std::vector<uint16_t> w(static_cast<size_t>(n * k));
    for (float& v : x) v = u(rng);
    for (uint16_t& v : w) v = f32_to_bf16(u(rng) * 0.05f);
    cpu::LinearParams p;
    p.x = x.data();
    p.w = w.data();
    p.w_dtype = DType::kBF16;
    p.y = y.data();
    p.m = m, p.n = n, p.k = k;
    const double t = best_time([&] { cpu::linear(p); }, budget_s);
    const double flops = 2.0 * static_cast<double>(m * n * k) / t;
    // GEMV-like shapes are bandwidth bound: the compute rate comes from the large ones.
    if (m >= 64) rate = std::max(rate, flops);
    rows.push_back({{"m", m}, {"n", n}, {"k", k}, {"seconds", t}, {"flops_per_s", flops}});
  }
  return rows;
}

nlohmann::json measure_attention(double budget_s, double& rate) {
  nlohmann::json rows = nlohmann::json::array();
  rate = 0;
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> u(-1, 1);
  const int64_t shapes[][2] = {{1, 4096}, {128, 2048}, {512, 2048}};  // (queries, keys)
  const int64_t hq = 16, hkv = 8, d = 128;
  for (const auto& s : shapes) {
    const int64_t nq = s[0], nkv = s[1];
    std::vector<float> q(static_cast<size_t>(nq * hq * d)), k(static_cast<size_t>(nkv * hkv * d)),
        v(k.size()), out(q.size()), lse(static_cast<size_t>(nq * hq));
    for (auto* buf : {&q, &k, &v})
      for (float& x : *buf) x = u(rng);
    cpu::AttentionParams p;
    p.q = q.data(), p.k = k.data(), p.v = v.data(), p.out = out.data(), p.lse = lse.data();
    p.num_q = nq, p.num_kv = nkv, p.num_q_heads = hq, p.num_kv_heads = hkv, p.head_dim = d;
    p.causal = false;
    const double t = best_time([&] { cpu::attention(p); }, budget_s);
    const double pairs = static_cast<double>(nq * nkv);
    // QKᵀ and PV: 2 FLOPs per multiply-add, head_dim each, per query head.
    const double flops = 4.0 * pairs * static_cast<double>(hq * d) / t;
    if (nq >= 128) rate = std::max(rate, flops);
    rows.push_back({{"queries", nq}, {"keys", nkv}, {"q_heads", hq}, {"kv_heads", hkv}, {"head_dim", d},
                    {"seconds", t}, {"flops_per_s", flops}, {"pairs_per_s_per_head", pairs * hq / t}});
  }
  return rows;
}

nlohmann::json measure_bandwidth(double budget_s, double& rate) {
  const size_t n = size_t{64} << 20;  // 256 MB of floats: far beyond the caches
  std::vector<float> a(n, 1.0f);
  volatile float sink = 0;
  const double t = best_time(
      [&] {
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp parallel for reduction(+ : s0, s1, s2, s3)
        for (size_t i = 0; i < n; i += 4) s0 += a[i], s1 += a[i + 1], s2 += a[i + 2], s3 += a[i + 3];
        sink = s0 + s1 + s2 + s3;
      },
      budget_s);
  (void)sink;
  rate = static_cast<double>(n * sizeof(float)) / t;
  return {{"bytes", n * sizeof(float)}, {"seconds", t}, {"read_bytes_per_s", rate}};
}

// Runs the engine on batches of known shapes and times every step, `repeats` times
// per shape; a step's time is the median over the repeats (the cores are shared: the
// median is what a later run on the same machine sees, not the best case).
Result<std::vector<MeasuredStep>> measure_steps(const std::string& dir, bool quick, int repeats,
                                                float temperature, nlohmann::json& rows) {
  auto model = DenseModel::load(dir);
  if (!model.is_ok()) return invalid_argument("--model " + dir + ": " + model.status().message());
  // Steps as a server runs them: detokenizing each new token when the checkpoint has a
  // tokenizer, sampling at --temperature (1, the API default: softmax over the vocab).
  std::optional<Tokenizer> tok;
  if (std::filesystem::exists(std::filesystem::path(dir) / "tokenizer.json")) {
    auto t = Tokenizer::load(dir);
    if (!t.is_ok()) return invalid_argument("--model " + dir + ": " + t.status().message());
    tok = std::move(*t);
  }
  // batch × prompt, decodes, and the step budget (0: the whole batch's prompts in one
  // step). A budget below the prompt chunks it as a server does (batch 1 only): chunks
  // over a growing prefix pin down the per-pair term.
  struct Shape {
    int64_t batch, prompt, decodes, budget;
  };
  // Decodes at long contexts (the 4 × 1024 and 1 × 4096 shapes, 4 × 4096 in the full
  // run) pin down the KV-token term: a decode streams its whole context for one query.
  // Decode batches of 4 to 48 straddle the CPU linear's regime switch (kLinearSmallM: 16
  // or 32 rows, ops/cpu/linear.h); prompts of 16-512 tokens, alone and in pairs, are what
  // a chat's first step costs.
  std::vector<Shape> shapes = {{1, 16, 6, 0},   {1, 64, 2, 0},  {1, 128, 6, 0}, {1, 256, 2, 0},
                               {2, 256, 2, 0},  {1, 512, 4, 0}, {4, 64, 6, 0},  {8, 64, 4, 0},
                               {4, 256, 4, 0},  {16, 32, 6, 0}, {24, 16, 4, 0}, {48, 16, 4, 0},
                               {1, 4096, 2, 1024}, {4, 1024, 4, 0}};
  if (!quick)
    for (Shape s : {Shape{1, 1024, 4, 0}, {8, 128, 6, 0}, {32, 16, 6, 0}, {1, 8192, 2, 2048}, {4, 4096, 3, 0}})
      shapes.push_back(s);
  std::vector<MeasuredStep> steps;
  std::mt19937 rng(3);
  for (const Shape& s : shapes) {
    std::vector<std::vector<double>> times;  // [step][repeat]
    // The process's first steps pay one-time costs (thread pools, first-touch pages: 10x a
    // step seen here), and steps stayed 1.5-2x slower for seconds after the microbenchmarks
    // in one quiet run: the first shape runs unrecorded until 2 s of steps have passed.
    const int first_rep = &s == &shapes.front() ? -1 : 0;
    const auto warm_start = Clock::now();
    for (int rep = first_rep; rep < repeats; ++rep) {
      EngineConfig cfg;
      cfg.scheduler.max_num_seqs = s.batch;
      cfg.scheduler.max_num_batched_tokens = s.budget > 0 ? s.budget : std::max<int64_t>(8192, s.batch * s.prompt);
      cfg.enable_prefix_caching = false;  // every prompt computed: the shapes are what we say
      cfg.kv_cache_memory_bytes = int64_t{1} << 30;
      auto engine = LLMEngine::create(*model, tok ? &*tok : nullptr, cfg);
      if (!engine.is_ok()) return engine.status();
      for (int64_t b = 0; b < s.batch; ++b) {
        GenerationRequest r;
        for (int64_t t = 0; t < s.prompt; ++t) r.prompt_token_ids.push_back(static_cast<int32_t>(3 + rng() % 1000));
        r.max_tokens = s.decodes + 1;
        r.sampling.temperature = temperature;
        r.ignore_eos = true;
        if (auto id = (*engine)->add_request(r); !id.is_ok()) return id.status();
      }
      for (size_t i = 0; (*engine)->has_unfinished(); ++i) {
        const auto t0 = Clock::now();
        (void)(*engine)->step();
        if (rep < 0) continue;
        if (times.size() <= i) times.resize(i + 1);
        times[i].push_back(since(t0));
      }
      if (rep < 0 && since(warm_start) < 2.0) rep = -2;  // warm up again
    }
    // The first steps prefill (every prompt at once, or chunk after chunk); then each
    // step decodes every request at a context one longer.
    const int64_t chunk = s.budget > 0 ? s.budget : s.prompt;
    const int64_t prefill_steps = (s.prompt + chunk - 1) / chunk;
    for (size_t i = 0; i < times.size(); ++i) {
      std::vector<double> t = times[i];
      std::sort(t.begin(), t.end());
      MeasuredStep m;
      m.seconds = t[(t.size() - 1) / 2];  // the lower median: of 2 repeats, the faster
      const int64_t ii = static_cast<int64_t>(i);
      const ChunkWork w = ii < prefill_steps
                              ? ChunkWork{ii * chunk, std::min(chunk, s.prompt - ii * chunk)}
                              : ChunkWork{s.prompt + ii - prefill_steps, 1};
      m.chunks.assign(static_cast<size_t>(s.batch), w);
      rows.push_back({{"batch", s.batch}, {"context", w.context_tokens}, {"new_tokens", w.new_tokens},
                      {"seconds_median", m.seconds}, {"seconds_min", t.front()}, {"seconds_max", t.back()}});
      steps.push_back(std::move(m));
    }
  }
  return steps;
}

int run_profile(const ProfileFlags& f) {
  if (f.repeats < 1) return fail("--repeats must be >= 1, got " + std::to_string(f.repeats));
  const double budget = f.quick ? 0.1 : 0.4;
  HardwareProfile hw;
  hw.name = f.name;
  nlohmann::json meas;
  std::fprintf(stderr, "bench profile: GEMM...\n");
  meas["gemm"] = measure_gemm(budget, hw.gemm_flops_per_s);
  std::fprintf(stderr, "bench profile: attention...\n");
  meas["attention"] = measure_attention(budget, hw.attn_flops_per_s);
  std::fprintf(stderr, "bench profile: memory bandwidth...\n");
  meas["bandwidth"] = measure_bandwidth(budget, hw.mem_bytes_per_s);
  hw.memory_bytes = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE));
  meas["steps"] = nlohmann::json::object();
  for (const std::string& dir : f.models) {
    std::fprintf(stderr, "bench profile: engine steps of %s...\n", dir.c_str());
    nlohmann::json rows = nlohmann::json::array();
    auto steps = measure_steps(dir, f.quick, f.repeats, f.temperature, rows);
    if (!steps.is_ok()) return fail(steps.status().message());
    auto mc = load_model_config(dir);
    if (!mc.is_ok()) return fail(mc.status().message());
    HardwareProfile plain = hw;
    plain.calibrations.clear();
    const RooflineCostModel roofline(model_shape(*mc), plain, 1);
    auto cal = fit_step_calibration(*steps, roofline, dir, cpu::kLinearSmallM);
    if (!cal.is_ok()) return fail(cal.status().message());
    hw.calibrations.push_back(*cal);
    // How well the fit and the plain roofline predict each measured step.
    HardwareProfile fitted = plain;
    fitted.calibrations = {*cal};
    const RooflineCostModel with_fit(model_shape(*mc), fitted, 1);
    for (size_t i = 0; i < steps->size(); ++i) {
      rows[i]["predicted_fit_s"] = with_fit.step_time_s((*steps)[i].chunks);
      rows[i]["predicted_roofline_s"] = roofline.step_time_s((*steps)[i].chunks);
    }
    meas["steps"][dir] = rows;
  }
  // The roofline's fixed cost: the first model's fitted cost of a one-sequence step.
  if (!hw.calibrations.empty()) hw.step_overhead_s = hw.calibrations[0].step_s + hw.calibrations[0].per_seq_s;

  nlohmann::json j = to_json(hw);
  char date[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  double load[3] = {0, 0, 0};
  if (getloadavg(load, 3) < 0) load[0] = -1;
  j["measured"] = {{"date", date},
                   {"hardware_threads", std::thread::hardware_concurrency()},
                   {"load_average_1m", load[0]},
                   {"quick", f.quick}};
  j["measurements"] = meas;
  std::ofstream out(f.out);
  out << j.dump(2) << "\n";
  if (!out) return fail("--out: cannot write " + f.out);
  std::printf("wrote %s: GEMM %.3g FLOP/s, attention %.3g FLOP/s, memory %.3g B/s", f.out.c_str(),
              hw.gemm_flops_per_s, hw.attn_flops_per_s, hw.mem_bytes_per_s);
  for (const StepCalibration& c : hw.calibrations)
    std::printf(
        "; %s: step %.3g s + %.3g s/seq + %.3g s/token (+ %.3g up to %lld tokens) + %.3g s/pair + %.3g s/KV token "
        "+ %.3g s past %lld tokens + %.3g s past %lld sequences + %.3g x GEMM (rms error %.1f%%)",
        c.model.c_str(), c.step_s, c.per_seq_s, c.per_token_s, c.per_narrow_token_s, static_cast<long long>(c.small_m),
        c.per_pair_s, c.per_kv_token_s, c.wide_gemm_s, static_cast<long long>(c.small_m), c.wide_head_s,
        static_cast<long long>(c.small_m), c.gemm_scale, 100 * c.rms_rel_error);
  std::printf("\n");
  return 0;
}

}  // namespace

void add_bench_profile_command(CLI::App& app, CommandRunner& run) {
  auto f = std::make_shared<ProfileFlags>();
  CLI::App* bench = bench_group(app);
  CLI::App* cmd = bench->add_subcommand("profile", "Measure this machine and write a hardware table for the cost model");
  cmd->add_option("--out", f->out, "Hardware table to write (JSON; simulate/serve --hardware FILE)")->required();
  cmd->add_option("--name", f->name, "Name recorded in the table")->capture_default_str();
  cmd->add_option("--model", f->models, "Model directory whose engine steps to time and fit (repeatable)");
  cmd->add_flag("--quick", f->quick, "Shorter measurements (tests)");
  cmd->add_option("--temperature", f->temperature, "Sampling temperature of the timed requests (0: greedy)")
      ->capture_default_str();
  cmd->add_option("--repeats", f->repeats, "Engine runs per step shape (median taken)")->capture_default_str();
  cmd->callback([f, &run] { run = [f] { return run_profile(*f); }; });
}

}  // namespace longctx::apps
