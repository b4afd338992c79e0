#include "apps/bench_serve_report.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

namespace longctx::apps {
namespace {

double percentile(const std::vector<double>& sorted, double q) {
  const double pos = q / 100.0 * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
}

std::string line(const std::string& name, double v, int decimals = 2) {
  return fmt::format("{:<40}{:<10.{}f}\n", name, v, decimals);
}
std::string line(const std::string& name, int64_t v) { return fmt::format("{:<40}{:<10}\n", name, v); }
// A 50-wide rule with the title centred, as vLLM draws its section headers.
std::string rule(const std::string& title, char fill) {
  const size_t pad = title.size() < 50 ? 50 - title.size() : 0;
  return std::string(pad / 2, fill) + title + std::string(pad - pad / 2, fill) + "\n";
}

std::string stats_block(const std::string& title, const std::string& key, const LatencyStats& s) {
  return rule(title, '-') + line("Mean " + key + " (ms):", s.mean_ms) + line("Median " + key + " (ms):", s.median_ms) +
         line("P99 " + key + " (ms):", s.p99_ms);
}

void put_stats(nlohmann::ordered_json& j, const std::string& key, const LatencyStats& s) {
  j["mean_" + key + "_ms"] = s.mean_ms;
  j["median_" + key + "_ms"] = s.median_ms;
  j["std_" + key + "_ms"] = s.std_ms;
  j["p99_" + key + "_ms"] = s.p99_ms;
}

// JSON has no inf/NaN: the configured rate is written as vLLM writes it, "inf".
nlohmann::ordered_json rate_json(double rate) {
  if (std::isnan(rate)) return "trace";
  if (std::isinf(rate)) return "inf";
  return rate;
}

}  // namespace

LatencyStats latency_stats(std::vector<double> seconds) {
  LatencyStats s;
  s.count = static_cast<int64_t>(seconds.size());
  if (seconds.empty()) return s;
  std::sort(seconds.begin(), seconds.end());
  double sum = 0;
  for (double v : seconds) sum += v;
  const double mean = sum / static_cast<double>(seconds.size());
  double var = 0;
  for (double v : seconds) var += (v - mean) * (v - mean);
  s.mean_ms = mean * 1e3;
  s.median_ms = percentile(seconds, 50) * 1e3;
  s.p99_ms = percentile(seconds, 99) * 1e3;
  s.std_ms = std::sqrt(var / static_cast<double>(seconds.size())) * 1e3;
  return s;
}

BenchSummary summarize(const BenchRun& run, double request_rate, bool mix) {
  BenchSummary s;
  s.model = run.model;
  s.request_rate = request_rate;
  s.max_concurrency = run.max_concurrency;
  s.duration_s = run.duration_s;
  s.mix = mix;
  std::vector<double> ttft, tpot, itl, e2el, short_ttft, long_ttft;
  for (const RequestRecord& r : run.records) {
    s.errors.push_back(r.error);
    if (!r.success) {
      ++s.failed;
      continue;
    }
    ++s.completed;
    s.total_input_tokens += r.prompt_tokens;
    s.total_output_tokens += r.output_tokens;
    ttft.push_back(r.ttft_s);
    (r.is_long ? long_ttft : short_ttft).push_back(r.ttft_s);
    e2el.push_back(r.e2e_s);
    itl.insert(itl.end(), r.itl_s.begin(), r.itl_s.end());
    // TPOT excludes the first token, so a one-token request has none.
    if (r.output_tokens > 1) tpot.push_back((r.e2e_s - r.ttft_s) / static_cast<double>(r.output_tokens - 1));
  }
  if (s.duration_s > 0) {
    s.request_throughput = static_cast<double>(s.completed) / s.duration_s;
    s.input_throughput = static_cast<double>(s.total_input_tokens) / s.duration_s;
    s.output_throughput = static_cast<double>(s.total_output_tokens) / s.duration_s;
    s.total_token_throughput = s.input_throughput + s.output_throughput;
  }
  s.ttft = latency_stats(ttft);
  s.tpot = latency_stats(tpot);
  s.itl = latency_stats(itl);
  s.e2el = latency_stats(e2el);
  s.short_ttft = latency_stats(short_ttft);
  s.long_ttft = latency_stats(long_ttft);
  return s;
}

std::string format_table(const BenchSummary& s) {
  std::string out = rule(" Serving Benchmark Result ", '=');
  out += line("Successful requests:", s.completed);
  out += line("Failed requests:", s.failed);
  out += fmt::format("{:<40}{:<10}\n", "Request rate configured (RPS):",
                     std::isnan(s.request_rate) ? "trace" : fmt::format("{:.2f}", s.request_rate));
  out += line("Maximum request concurrency:", s.max_concurrency);
  out += line("Benchmark duration (s):", s.duration_s);
  out += line("Total input tokens:", s.total_input_tokens);
  out += line("Total generated tokens:", s.total_output_tokens);
  out += line("Request throughput (req/s):", s.request_throughput);
  out += line("Input token throughput (tok/s):", s.input_throughput);
  out += line("Output token throughput (tok/s):", s.output_throughput);
  out += line("Total Token throughput (tok/s):", s.total_token_throughput);
  out += stats_block("Time to First Token", "TTFT", s.ttft);
  out += stats_block("Time per Output Token (excl. 1st token)", "TPOT", s.tpot);
  out += stats_block("Inter-token Latency", "ITL", s.itl);
  out += stats_block("End-to-end Latency", "E2EL", s.e2el);
  if (s.mix) {
    out += stats_block(fmt::format("TTFT of {} short requests", s.short_ttft.count), "TTFT", s.short_ttft);
    out += stats_block(fmt::format("TTFT of {} long requests", s.long_ttft.count), "TTFT", s.long_ttft);
  }
  out += std::string(50, '=') + "\n";
  return out;
}

nlohmann::ordered_json to_json(const BenchSummary& s, const BenchRun& run) {
  nlohmann::ordered_json j;
  j["model_id"] = s.model;
  j["request_rate"] = rate_json(s.request_rate);
  j["max_concurrency"] = s.max_concurrency;
  j["num_prompts"] = static_cast<int64_t>(run.records.size());
  j["completed"] = s.completed;
  j["failed"] = s.failed;
  j["duration"] = s.duration_s;
  j["total_input_tokens"] = s.total_input_tokens;
  j["total_output_tokens"] = s.total_output_tokens;
  j["request_throughput"] = s.request_throughput;
  j["input_throughput"] = s.input_throughput;
  j["output_throughput"] = s.output_throughput;
  j["total_token_throughput"] = s.total_token_throughput;
  put_stats(j, "ttft", s.ttft);
  put_stats(j, "tpot", s.tpot);
  put_stats(j, "itl", s.itl);
  put_stats(j, "e2el", s.e2el);
  if (s.mix) {
    j["num_short_requests"] = s.short_ttft.count;
    j["num_long_requests"] = s.long_ttft.count;
    put_stats(j, "short_ttft", s.short_ttft);
    put_stats(j, "long_ttft", s.long_ttft);
  }
  // Built apart, then moved in: ordered_json's storage is a vector, so a reference to
  // one member would not survive inserting the next.
  nlohmann::ordered_json input_lens = nlohmann::ordered_json::array(), output_lens = input_lens,
                         ttfts = input_lens, itls = input_lens, is_long = input_lens;
  for (const RequestRecord& r : run.records) {
    input_lens.push_back(r.prompt_tokens);
    output_lens.push_back(r.output_tokens);
    ttfts.push_back(r.ttft_s);
    itls.push_back(r.itl_s);
    is_long.push_back(r.is_long);
  }
  j["input_lens"] = std::move(input_lens);
  j["output_lens"] = std::move(output_lens);
  j["ttfts"] = std::move(ttfts);
  j["itls"] = std::move(itls);
  j["is_long"] = std::move(is_long);
  j["errors"] = s.errors;
  return j;
}

}  // namespace longctx::apps
