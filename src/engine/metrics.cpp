#include "engine/metrics.h"

#include <algorithm>

namespace longctx {

Histogram::Histogram(std::vector<double> bounds) : upper_bounds(std::move(bounds)), counts(upper_bounds.size() + 1, 0) {}

void Histogram::observe(double v) {
  const size_t i = static_cast<size_t>(std::lower_bound(upper_bounds.begin(), upper_bounds.end(), v) - upper_bounds.begin());
  counts[i] += 1;
  sum += v;
  count += 1;
}

namespace {
// Buckets as vLLM's: latencies from milliseconds to minutes (long prompts take long).
std::vector<double> latency_buckets() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
}
}  // namespace

EngineMetricsSnapshot::EngineMetricsSnapshot()
    : ttft_s(latency_buckets()), inter_token_s(latency_buckets()), e2e_s(latency_buckets()), queue_s(latency_buckets()) {}

void EngineMetrics::record_finished(const RequestTimings& t, bool aborted) {
  std::lock_guard<std::mutex> lock(mu_);
  (aborted ? m_.requests_aborted : m_.requests_finished) += 1;
  m_.prompt_tokens += t.prompt_tokens;
  m_.generation_tokens += t.generation_tokens;
  if (t.first_token_s >= 0) m_.ttft_s.observe(t.ttft_s());
  if (t.first_scheduled_s >= 0) m_.queue_s.observe(t.queue_s());
  for (double gap : t.inter_token_s) m_.inter_token_s.observe(gap);
  if (t.finished_s >= 0) m_.e2e_s.observe(t.e2e_s());
}

void EngineMetrics::record_rejected() {
  std::lock_guard<std::mutex> lock(mu_);
  m_.requests_rejected += 1;
}

void EngineMetrics::record_preemption() {
  std::lock_guard<std::mutex> lock(mu_);
  m_.num_preemptions += 1;
}

void EngineMetrics::set_gauges(int64_t running, int64_t waiting, double kv_usage, int64_t cache_queries,
                               int64_t cache_hits) {
  std::lock_guard<std::mutex> lock(mu_);
  m_.num_running = running;
  m_.num_waiting = waiting;
  m_.kv_usage = kv_usage;
  m_.prefix_cache_queries = cache_queries;
  m_.prefix_cache_hits = cache_hits;
}

void EngineMetrics::set_layout(std::vector<std::pair<std::string, int64_t>> labels, int64_t blocks_per_rank_budget) {
  std::lock_guard<std::mutex> lock(mu_);
  m_.layout = std::move(labels);
  m_.kv_blocks_per_rank_budget = blocks_per_rank_budget;
}

void EngineMetrics::set_rank_blocks(std::vector<int64_t> blocks) {
  std::lock_guard<std::mutex> lock(mu_);
  m_.kv_blocks_per_rank = std::move(blocks);
}

EngineMetricsSnapshot EngineMetrics::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return m_;
}

}  // namespace longctx
