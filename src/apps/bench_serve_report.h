// The summary `longctx bench serve` prints: what `vllm bench serve` reports (request
// and token throughput; TTFT, TPOT, ITL, E2E mean/median/p99) as a table and as JSON
// with the same field names, plus, for --mix, the short and long requests' TTFT apart.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/bench_serve_client.h"

namespace longctx::apps {

// Milliseconds, as vLLM reports them. All zero when there are no samples.
struct LatencyStats {
  double mean_ms = 0, median_ms = 0, p99_ms = 0, std_ms = 0;
  int64_t count = 0;
};
// Linear-interpolated percentiles (numpy's default), of values in seconds.
LatencyStats latency_stats(std::vector<double> seconds);

struct BenchSummary {
  std::string model;
  double request_rate = 0;  // configured; inf = all at once, NaN = from the trace
  int64_t max_concurrency = 0;
  int64_t completed = 0, failed = 0;
  double duration_s = 0;
  int64_t total_input_tokens = 0, total_output_tokens = 0;
  double request_throughput = 0, input_throughput = 0, output_throughput = 0, total_token_throughput = 0;
  LatencyStats ttft, tpot, itl, e2el;
  bool mix = false;
  LatencyStats short_ttft, long_ttft;  // --mix only
  std::vector<std::string> errors;     // per request, "" on success
};

BenchSummary summarize(const BenchRun& run, double request_rate, bool mix);
std::string format_table(const BenchSummary& s);
// vLLM's result-json fields (completed, duration, request_throughput, mean_ttft_ms, ...)
// plus per-request arrays (input_lens, output_lens, ttfts, itls, errors).
nlohmann::ordered_json to_json(const BenchSummary& s, const BenchRun& run);

}  // namespace longctx::apps
