// Engine metrics, kept in one place for the server's /metrics (vLLM's names are what
// dashboards expect; the server maps these onto them). Per-request timings are
// recorded when a request finishes; gauges are refreshed every step.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace longctx {

struct RequestTimings {
  double arrival_s = 0, first_scheduled_s = -1, first_token_s = -1, last_token_s = -1, finished_s = -1;
  std::vector<double> inter_token_s;  // gaps between consecutive output tokens
  int64_t prompt_tokens = 0, generation_tokens = 0, cached_tokens = 0, preemptions = 0;
  double ttft_s() const { return first_token_s - arrival_s; }
  double queue_s() const { return first_scheduled_s - arrival_s; }
  double e2e_s() const { return finished_s - arrival_s; }
};

// A fixed-bucket histogram (Prometheus style: cumulative counts per upper bound).
struct Histogram {
  std::vector<double> upper_bounds;
  std::vector<uint64_t> counts;  // one per bound, plus +Inf last
  double sum = 0;
  uint64_t count = 0;
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
};

struct EngineMetricsSnapshot {
  int64_t num_running = 0, num_waiting = 0;
  double kv_usage = 0;  // fraction of KV blocks in use
  int64_t num_preemptions = 0;
  int64_t prompt_tokens = 0, generation_tokens = 0;
  int64_t prefix_cache_queries = 0, prefix_cache_hits = 0;  // tokens
  int64_t requests_finished = 0, requests_aborted = 0, requests_rejected = 0;
  Histogram ttft_s, inter_token_s, e2e_s, queue_s;
  // The parallel layout (label name → value: tp, pp, cp, dcp, kvp, world) and the KV
  // blocks each rank holds now (index: global rank; one entry on a single rank) out of
  // its budget of kv_blocks_per_rank_budget.
  std::vector<std::pair<std::string, int64_t>> layout;
  std::vector<int64_t> kv_blocks_per_rank;
  int64_t kv_blocks_per_rank_budget = 0;
  EngineMetricsSnapshot();
};

// Thread-safe: the engine thread records, the server thread reads snapshots.
class EngineMetrics {
 public:
  void record_finished(const RequestTimings& t, bool aborted);
  void record_rejected();
  void record_preemption();
  void set_gauges(int64_t running, int64_t waiting, double kv_usage, int64_t cache_queries, int64_t cache_hits);
  void set_layout(std::vector<std::pair<std::string, int64_t>> labels, int64_t blocks_per_rank_budget);
  void set_rank_blocks(std::vector<int64_t> blocks);
  EngineMetricsSnapshot snapshot() const;

 private:
  mutable std::mutex mu_;
  EngineMetricsSnapshot m_;
};

}  // namespace longctx
