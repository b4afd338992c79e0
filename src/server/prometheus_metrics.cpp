#include "server/prometheus_metrics.h"

#include <fmt/format.h>

namespace longctx::server {
namespace {

std::string escape_label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

// Prometheus floats: plain decimal, +Inf for the last bucket.
std::string num(double v) { return fmt::format("{}", v); }

class Writer {
 public:
  explicit Writer(std::string labels) : labels_(std::move(labels)) {}

  void family(const char* name, const char* type, const char* help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  void sample(const std::string& name, double v, const std::string& extra = "") {
    out_ += fmt::format("{}{{{}{}}} {}\n", name, labels_, extra.empty() ? "" : "," + extra, num(v));
  }
  void gauge(const char* name, const char* help, double v) {
    family(name, "gauge", help);
    sample(name, v);
  }
  void counter(const char* name, const char* help, double v) {
    family(name, "counter", help);
    sample(name, v);
  }
  // The snapshot keeps a count per bucket; Prometheus wants them cumulative.
  void histogram(const char* name, const char* help, const Histogram& h) {
    family(name, "histogram", help);
    uint64_t cum = 0;
    for (size_t i = 0; i < h.counts.size(); ++i) {
      cum += h.counts[i];
      const std::string le = i < h.upper_bounds.size() ? num(h.upper_bounds[i]) : "+Inf";
      sample(std::string(name) + "_bucket", static_cast<double>(cum), "le=\"" + le + "\"");
    }
    sample(std::string(name) + "_sum", h.sum);
    sample(std::string(name) + "_count", static_cast<double>(h.count));
  }
  std::string take() { return std::move(out_); }

 private:
  std::string labels_;
  std::string out_;
};

}  // namespace

std::string render_prometheus(const EngineMetricsSnapshot& m, const MetricsInfo& info) {
  Writer w("model_name=\"" + escape_label(info.model_name) + "\"");
  w.gauge("vllm:num_requests_running", "Number of requests in model execution batches.",
          static_cast<double>(m.num_running));
  w.gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.",
          static_cast<double>(m.num_waiting));
  w.gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", m.kv_usage);
  w.counter("vllm:prompt_tokens_total", "Number of prefill tokens processed.",
            static_cast<double>(m.prompt_tokens));
  w.counter("vllm:generation_tokens_total", "Number of generation tokens processed.",
            static_cast<double>(m.generation_tokens));
  w.counter("vllm:num_preemptions_total", "Cumulative number of preemptions from the engine.",
            static_cast<double>(m.num_preemptions));
  w.counter("vllm:prefix_cache_queries_total", "Prefix cache queries, in terms of number of queried tokens.",
            static_cast<double>(m.prefix_cache_queries));
  w.counter("vllm:prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens.",
            static_cast<double>(m.prefix_cache_hits));
  w.family("vllm:request_success_total", "counter", "Count of successfully processed requests.");
  w.sample("vllm:request_success_total", static_cast<double>(m.requests_finished));
  w.histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", m.ttft_s);
  w.histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
              m.inter_token_s);
  w.histogram("vllm:e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.",
              m.e2e_s);
  w.histogram("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.",
              m.queue_s);

  w.counter("longctx:requests_aborted_total", "Requests aborted (client gone, drain, failure).",
            static_cast<double>(m.requests_aborted));
  w.counter("longctx:requests_rejected_total", "Requests refused at admission (invalid or queue full).",
            static_cast<double>(m.requests_rejected));
  w.gauge("longctx:server_active_requests", "Engine requests admitted by the server and not finished.",
          static_cast<double>(info.active_requests));
  w.gauge("longctx:kv_cache_blocks", "KV-cache blocks per rank.", static_cast<double>(info.num_kv_blocks));
  w.gauge("longctx:kv_cache_block_size", "Tokens per KV-cache block.", static_cast<double>(info.block_size));
  w.family("longctx:parallel_layout", "gauge",
           "The parallel layout (labels); the value is the number of ranks.");
  if (m.layout.empty()) {
    w.sample("longctx:parallel_layout", static_cast<double>(info.tp * info.pp * info.cp * info.kvp),
             fmt::format("tp=\"{}\",pp=\"{}\",cp=\"{}\",dcp=\"{}\",kvp=\"{}\"", info.tp, info.pp, info.cp,
                         info.dcp, info.kvp));
  } else {  // the engine's own layout (EngineMetrics)
    std::string labels;
    double world = 1;
    for (const auto& [name, value] : m.layout) {
      if (name == "world") world = static_cast<double>(value);
      else labels += fmt::format("{}{}=\"{}\"", labels.empty() ? "" : ",", name, value);
    }
    w.sample("longctx:parallel_layout", world, labels);
  }
  w.family("longctx:rank_kv_cache_usage_perc", "gauge",
           "KV-cache usage per rank. 1 means 100 percent usage.");
  const double budget = static_cast<double>(m.kv_blocks_per_rank_budget);
  if (m.kv_blocks_per_rank.empty()) w.sample("longctx:rank_kv_cache_usage_perc", m.kv_usage, "rank=\"0\"");
  for (size_t r = 0; r < m.kv_blocks_per_rank.size(); ++r)
    w.sample("longctx:rank_kv_cache_usage_perc",
             budget > 0 ? static_cast<double>(m.kv_blocks_per_rank[r]) / budget : m.kv_usage,
             fmt::format("rank=\"{}\"", r));
  w.family("longctx:kv_blocks_used", "gauge", "KV-cache blocks each rank holds.");
  for (size_t r = 0; r < m.kv_blocks_per_rank.size(); ++r)
    w.sample("longctx:kv_blocks_used", static_cast<double>(m.kv_blocks_per_rank[r]), fmt::format("rank=\"{}\"", r));
  return w.take();
}

}  // namespace longctx::server
