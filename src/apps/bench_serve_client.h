// The load generator of `longctx bench serve`: streaming /v1/completions requests with
// token-id prompts sent from a pool of threads at their arrival times, each timed from
// its SSE chunks (TTFT, inter-token gaps, end-to-end). Deciding the workload
// (bench_serve_client's make_* helpers) is apart from sending it (run_bench_serve);
// the numbers are summarised by bench_serve_report.h.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/status.h"

namespace longctx::apps {

// One request to send: a token-id prompt, how many tokens to generate (ignore_eos, so
// exactly this many), and when to send it (seconds after the run starts).
struct BenchRequest {
  std::vector<int32_t> prompt;
  int64_t output_tokens = 0;
  double arrival_s = 0;
  bool is_long = false;  // --mix: one of the few very long prompts
};

struct RandomDatasetSpec {
  int64_t num_prompts = 0;
  int64_t input_len = 0, output_len = 0;
  bool mix = false;            // a few long prompts among short ones
  double long_fraction = 0.05;  // --mix: share of long prompts (at least one)
  int64_t long_factor = 8;     // --mix: a long prompt is long_factor × input_len
  int64_t vocab_size = 256;    // prompt ids are uniform in [0, vocab_size)
  uint64_t seed = 0;
};

// Random token-id prompts, all arriving at 0 (set arrivals with assign_poisson_arrivals).
Result<std::vector<BenchRequest>> make_random_requests(const RandomDatasetSpec& spec);

// Poisson arrivals at `rate_per_s` (exponential gaps), in request order; an infinite
// rate sends everything at 0, as `vllm bench serve --request-rate inf` does.
void assign_poisson_arrivals(std::vector<BenchRequest>& requests, double rate_per_s, uint64_t seed);

struct BenchServeConfig {
  std::string base_url;  // http://host:port, a trailing /v1 is accepted
  std::string model;     // empty: the first model of GET /v1/models
  std::string api_key;   // sent as "Authorization: Bearer KEY" when set
  int64_t max_concurrency = 0;      // 0: no limit beyond kMaxWorkers
  double request_timeout_s = 600;   // longest silence on one request's stream
  double max_duration_s = 3600;     // the whole run; unsent requests then fail
  // > 0: a load of fixed length: the requests are sent over and over (each repeat of
  // the list shifted by its arrival span plus one mean gap) until this many seconds
  // have passed; what is in flight then runs to its end, nothing more is sent.
  double duration_s = 0;
  static constexpr int64_t kMaxWorkers = 1024;

  Status validate() const;
};

// What one request measured. Times are seconds; itl_s are the gaps between content
// chunks (a chunk carrying several tokens is one gap, as vLLM counts it).
struct RequestRecord {
  int64_t prompt_tokens = 0;
  int64_t max_tokens = 0;
  bool is_long = false;
  bool success = false;
  double start_s = 0;  // since the run started
  double ttft_s = 0, e2e_s = 0;
  std::vector<double> itl_s;
  int64_t output_tokens = 0;  // from the final usage chunk
  std::string error;          // why it failed, empty on success
};

struct BenchRun {
  std::string model;
  std::vector<RequestRecord> records;  // in send order (with duration_s, repeats included)
  double duration_s = 0;               // first send to last completion
  int64_t max_concurrency = 0;         // workers used
};

// Sends every request (with duration_s, as many as fit) and waits for all; returns in bounded time (each request is
// bounded by request_timeout_s of silence, the run by max_duration_s). Fails only when
// the server cannot be reached or names no model; per-request errors are in records.
Result<BenchRun> run_bench_serve(const BenchServeConfig& config, const std::vector<BenchRequest>& requests);

}  // namespace longctx::apps
