// `longctx bench serve`: a load generator against a running OpenAI-compatible server
// (ours or vLLM), reporting what `vllm bench serve` reports. Only the --base-url given
// is contacted; the run is bounded by --num-prompts (or --duration) and --max-duration.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <random>

#include "apps/bench_serve_client.h"
#include "apps/bench_serve_report.h"
#include "apps/commands.h"
#include "sim/trace.h"

namespace longctx::apps {
namespace {

struct BenchServeFlags {
  BenchServeConfig client;
  std::string dataset = "random";
  std::string request_rate = "inf";
  bool request_rate_given = false;
  int64_t num_prompts = 1000;
  int64_t input_len = 1024, output_len = 128;
  int64_t vocab_size = 256;
  bool mix = false;
  double mix_long_fraction = 0.05;
  int64_t mix_long_factor = 8;
  std::string result_json;
  uint64_t seed = 0;
};

Result<double> parse_rate(const std::string& s) {
  if (s == "inf") return std::numeric_limits<double>::infinity();
  try {
    size_t used = 0;
    const double r = std::stod(s, &used);
    if (used == s.size() && r > 0 && std::isfinite(r)) return r;
  } catch (const std::exception&) {
  }
  return invalid_argument("--request-rate: '" + s + "' is not a positive number of requests/s or 'inf'");
}

// A trace file's requests: random token-id prompts of its lengths, its arrival times
// unless --request-rate is given.
Result<std::vector<BenchRequest>> trace_requests(const BenchServeFlags& f) {
  auto trace = load_trace(f.dataset);
  if (!trace.is_ok()) return invalid_argument("--dataset " + f.dataset + ": " + trace.status().message());
  if (trace->empty()) return invalid_argument("--dataset " + f.dataset + ": no requests");
  const size_t n = std::min(trace->size(), static_cast<size_t>(f.num_prompts));
  std::mt19937_64 rng(f.seed);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(f.vocab_size - 1));
  std::vector<BenchRequest> out(n);
  for (size_t i = 0; i < n; ++i) {
    const TraceRequest& t = (*trace)[i];
    out[i].prompt.resize(static_cast<size_t>(t.prompt_tokens));
    for (int32_t& id : out[i].prompt) id = token(rng);
    out[i].output_tokens = t.output_tokens;
    out[i].arrival_s = t.arrival_s - (*trace)[0].arrival_s;
  }
  return out;
}

int run_bench_serve_command(const BenchServeFlags& f) {
  if (f.num_prompts <= 0) return fail("--num-prompts must be positive");
  if (f.vocab_size <= 0 || f.vocab_size > std::numeric_limits<int32_t>::max())
    return fail("--vocab-size must be in [1, 2^31)");
  auto rate = parse_rate(f.request_rate);
  if (!rate.is_ok()) return fail(rate.status().message());
  const bool from_trace = f.dataset != "random";
  if (from_trace && f.mix) return fail("--mix generates its own workload: use it with --dataset random");

  Result<std::vector<BenchRequest>> requests = invalid_argument("");
  if (from_trace) {
    requests = trace_requests(f);
  } else {
    RandomDatasetSpec spec;
    spec.num_prompts = f.num_prompts;
    spec.input_len = f.input_len;
    spec.output_len = f.output_len;
    spec.mix = f.mix;
    spec.long_fraction = f.mix_long_fraction;
    spec.long_factor = f.mix_long_factor;
    spec.vocab_size = f.vocab_size;
    spec.seed = f.seed;
    requests = make_random_requests(spec);
  }
  if (!requests.is_ok()) return fail(requests.status().message());
  // A trace keeps its own arrivals unless a rate is asked for.
  const bool trace_arrivals = from_trace && !f.request_rate_given;
  if (!trace_arrivals) assign_poisson_arrivals(*requests, *rate, f.seed);

  if (f.client.duration_s > 0)
    std::fprintf(stderr, "bench serve: %zu requests repeated for %g s to %s (rate %s)\n", requests->size(),
                 f.client.duration_s, f.client.base_url.c_str(),
                 trace_arrivals ? "from trace" : f.request_rate.c_str());
  else
    std::fprintf(stderr, "bench serve: %zu requests to %s (rate %s)\n", requests->size(),
                 f.client.base_url.c_str(), trace_arrivals ? "from trace" : f.request_rate.c_str());
  auto run = run_bench_serve(f.client, *requests);
  if (!run.is_ok()) return fail(run.status().message());
  const BenchSummary summary =
      summarize(*run, trace_arrivals ? std::numeric_limits<double>::quiet_NaN() : *rate, f.mix);
  std::fputs(format_table(summary).c_str(), stdout);
  for (size_t i = 0, shown = 0; i < summary.errors.size() && shown < 5; ++i) {
    if (summary.errors[i].empty()) continue;
    std::fprintf(stderr, "request %zu failed: %s\n", i, summary.errors[i].c_str());
    ++shown;
  }
  if (!f.result_json.empty()) {
    std::ofstream out(f.result_json);
    out << to_json(summary, *run).dump(2) << "\n";
    if (!out) return fail("--result-json: cannot write " + f.result_json);
  }
  return summary.failed == 0 ? 0 : 2;
}

}  // namespace

void add_bench_serve_command(CLI::App& app, CommandRunner& run) {
  auto f = std::make_shared<BenchServeFlags>();
  CLI::App* bench = bench_group(app);
  CLI::App* cmd =
      bench->add_subcommand("serve", "Load-test an OpenAI-compatible server (as `vllm bench serve`)");
  cmd->add_option("--base-url", f->client.base_url, "Server to test, http://HOST:PORT")->required();
  cmd->add_option("--model", f->client.model, "Model name (default: the first of /v1/models)");
  cmd->add_option("--api-key", f->client.api_key, "Bearer key for the server")->envname("LONGCTX_API_KEY");
  cmd->add_option("--dataset", f->dataset,
                  "'random', or a JSON-lines trace {arrival_s, prompt_tokens, output_tokens}")
      ->capture_default_str();
  cmd->add_option("--num-prompts", f->num_prompts, "Requests to send (a trace: at most this many)")
      ->capture_default_str();
  cmd->add_option("--request-rate", f->request_rate,
                  "Poisson arrival rate (req/s), or inf to send all at once (a trace: its own arrivals)")
      ->capture_default_str()
      ->each([f](const std::string&) { f->request_rate_given = true; });
  cmd->add_option("--input-len", f->input_len, "Prompt tokens (random dataset)")->capture_default_str();
  cmd->add_option("--output-len", f->output_len, "Generated tokens per request (ignore_eos)")
      ->capture_default_str();
  cmd->add_option("--vocab-size", f->vocab_size, "Prompt token ids are drawn from [0, this)")
      ->capture_default_str();
  cmd->add_option("--max-concurrency", f->client.max_concurrency, "Requests in flight at most (0: no limit)")
      ->capture_default_str();
  cmd->add_flag("--mix", f->mix, "A few very long prompts among short ones; short TTFT reported apart");
  cmd->add_option("--mix-long-fraction", f->mix_long_fraction, "--mix: share of long prompts")
      ->capture_default_str();
  cmd->add_option("--mix-long-factor", f->mix_long_factor, "--mix: a long prompt is this × --input-len")
      ->capture_default_str();
  cmd->add_option("--request-timeout", f->client.request_timeout_s, "Seconds a stream may stay silent")
      ->capture_default_str();
  cmd->add_option("--max-duration", f->client.max_duration_s, "Seconds the whole run may take")
      ->capture_default_str();
  cmd->add_option("--duration", f->client.duration_s,
                  "Seconds of load: the prompts are sent over and over until then, in-flight ones finish "
                  "(0: each prompt once)")
      ->capture_default_str();
  cmd->add_option("--result-json", f->result_json, "Also write the results as JSON here");
  cmd->add_option("--seed", f->seed, "Seed of prompts and arrivals")->capture_default_str();
  cmd->callback([f, &run] { run = [f] { return run_bench_serve_command(*f); }; });
}

}  // namespace longctx::apps
