#include "apps/bench_serve_client.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

namespace longctx::apps {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// "http://h:p/v1/" -> "http://h:p": the client adds the /v1/... paths itself.
std::string strip_base_url(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  if (url.size() >= 3 && url.compare(url.size() - 3, 3, "/v1") == 0) url.resize(url.size() - 3);
  return url;
}

httplib::Headers auth_headers(const BenchServeConfig& c) {
  httplib::Headers h;
  if (!c.api_key.empty()) h.emplace("Authorization", "Bearer " + c.api_key);
  return h;
}

httplib::Client make_client(const BenchServeConfig& c) {
  httplib::Client client(strip_base_url(c.base_url));
  client.set_connection_timeout(10, 0);
  const auto timeout_s = static_cast<time_t>(std::ceil(c.request_timeout_s));
  client.set_read_timeout(timeout_s, 0);
  client.set_write_timeout(timeout_s, 0);
  client.set_keep_alive(true);
  return client;
}

Result<std::string> first_model(const BenchServeConfig& c) {
  auto client = make_client(c);
  auto r = client.Get("/v1/models", auth_headers(c));
  if (!r)
    return invalid_argument("--base-url " + c.base_url + ": GET /v1/models failed (" +
                            httplib::to_string(r.error()) + ")");
  if (r->status != 200)
    return invalid_argument("--base-url " + c.base_url + ": GET /v1/models answered " +
                            std::to_string(r->status) + ": " + r->body);
  json j = json::parse(r->body, nullptr, false);
  if (j.is_discarded() || !j.contains("data") || !j["data"].is_array() || j["data"].empty() ||
      !j["data"][0].contains("id") || !j["data"][0]["id"].is_string())
    return invalid_argument("--base-url " + c.base_url + ": /v1/models lists no model; pass --model");
  return j["data"][0]["id"].get<std::string>();
}

// Reads one streamed completion: SSE "data: {...}" lines split across network reads.
class StreamTimer {
 public:
  StreamTimer(RequestRecord& rec, Clock::time_point sent) : rec_(rec), sent_(sent), last_(sent) {}

  // Returns false to stop reading (a malformed chunk or an error object).
  bool feed(const char* data, size_t n) {
    const Clock::time_point now = Clock::now();
    pending_.append(data, n);
    size_t nl;
    while ((nl = pending_.find('\n')) != std::string::npos) {
      std::string line = pending_.substr(0, nl);
      pending_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.rfind("data: ", 0) != 0) continue;
      if (!on_event(line.substr(6), now)) return false;
    }
    return pending_.size() < (1u << 20);  // a line never ends: not an SSE stream
  }

  bool done() const { return done_; }
  bool saw_content() const { return saw_content_; }
  bool saw_usage() const { return saw_usage_; }
  int64_t streamed_tokens() const { return streamed_tokens_; }

 private:
  bool on_event(const std::string& data, Clock::time_point now) {
    if (data == "[DONE]") {
      done_ = true;
      return true;
    }
    json j = json::parse(data, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      rec_.error = "malformed SSE chunk: " + data.substr(0, 200);
      return false;
    }
    if (j.contains("error")) {
      rec_.error = "error in stream: " + j["error"].dump();
      return false;
    }
    const json choices = j.value("choices", json::array());
    if (choices.empty()) {
      if (j.contains("usage") && j["usage"].is_object()) {
        rec_.output_tokens = j["usage"].value("completion_tokens", int64_t{0});
        saw_usage_ = true;
      }
      return true;
    }
    int64_t tokens = 0;
    bool content = false;
    for (const json& c : choices) {
      if (c.contains("token_ids") && c["token_ids"].is_array())
        tokens += static_cast<int64_t>(c["token_ids"].size());
      content = content || tokens > 0 ||
                (c.contains("text") && c["text"].is_string() && !c["text"].get<std::string>().empty());
    }
    if (!content) return true;  // e.g. a chunk carrying only finish_reason
    streamed_tokens_ += tokens;
    if (!saw_content_) {
      rec_.ttft_s = seconds_between(sent_, now);
      saw_content_ = true;
    } else {
      rec_.itl_s.push_back(seconds_between(last_, now));
    }
    last_ = now;
    return true;
  }

  RequestRecord& rec_;
  Clock::time_point sent_, last_;
  std::string pending_;
  bool done_ = false, saw_content_ = false, saw_usage_ = false;
  int64_t streamed_tokens_ = 0;
};

void send_one(httplib::Client& client, const BenchServeConfig& c, const std::string& model,
              const BenchRequest& req, Clock::time_point run_start, Clock::time_point deadline,
              RequestRecord& rec) {
  const json body = {
      {"model", model},          {"prompt", req.prompt}, {"max_tokens", req.output_tokens},
      {"ignore_eos", true},      {"stream", true},       {"stream_options", {{"include_usage", true}}},
      {"return_token_ids", true}};
  httplib::Request hr;
  hr.method = "POST";
  hr.path = "/v1/completions";
  hr.headers = auth_headers(c);
  hr.headers.emplace("Content-Type", "application/json");
  hr.body = body.dump();

  const Clock::time_point sent = Clock::now();
  rec.start_s = seconds_between(run_start, sent);
  StreamTimer timer(rec, sent);
  int status = 0;
  std::string error_body;
  hr.response_handler = [&](const httplib::Response& res) {
    status = res.status;
    return true;
  };
  hr.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    if (status != 200) {  // an error reply: keep its message, bounded
      error_body.append(data, std::min<size_t>(n, 4096 - std::min<size_t>(4096, error_body.size())));
      return true;
    }
    return Clock::now() < deadline && timer.feed(data, n);
  };
  auto r = client.send(hr);
  rec.e2e_s = seconds_between(sent, Clock::now());
  if (!rec.error.empty()) return;
  if (status != 0 && status != 200) {
    if (error_body.empty() && r) error_body = r->body.substr(0, 4096);
    rec.error = "HTTP " + std::to_string(status) + ": " + error_body;
  } else if (!r) {
    rec.error = Clock::now() >= deadline ? std::string("stopped at --max-duration")
                                         : "request failed: " + httplib::to_string(r.error());
  } else if (!timer.done()) {
    rec.error = "stream ended without [DONE]";
  } else if (!timer.saw_content()) {
    rec.error = "stream carried no tokens";
  } else {
    if (!timer.saw_usage()) rec.output_tokens = timer.streamed_tokens();  // a server without usage
    rec.success = true;
  }
}

}  // namespace

Result<std::vector<BenchRequest>> make_random_requests(const RandomDatasetSpec& s) {
  if (s.num_prompts <= 0)
    return invalid_argument("--num-prompts must be positive, got " + std::to_string(s.num_prompts));
  if (s.input_len <= 0)
    return invalid_argument("--input-len must be positive, got " + std::to_string(s.input_len));
  if (s.output_len <= 0)
    return invalid_argument("--output-len must be positive, got " + std::to_string(s.output_len));
  if (s.vocab_size <= 0)
    return invalid_argument("--vocab-size must be positive, got " + std::to_string(s.vocab_size));
  if (s.mix && s.long_factor < 1) return invalid_argument("--mix-long-factor must be at least 1");
  if (s.mix && !(s.long_fraction > 0 && s.long_fraction < 1))
    return invalid_argument("--mix-long-fraction must be in (0, 1)");
  std::mt19937_64 rng(s.seed);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(s.vocab_size - 1));
  std::vector<BenchRequest> out(static_cast<size_t>(s.num_prompts));
  if (s.mix) {
    // The long ones at random places among the short, so the short requests queued
    // behind each long prefill show the head-of-line blocking.
    const auto n_long =
        std::max<int64_t>(1, std::llround(s.long_fraction * static_cast<double>(s.num_prompts)));
    std::vector<size_t> order(out.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    for (int64_t i = 0; i < std::min<int64_t>(n_long, s.num_prompts); ++i)
      out[order[static_cast<size_t>(i)]].is_long = true;
  }
  for (BenchRequest& r : out) {
    const int64_t len = r.is_long ? s.input_len * s.long_factor : s.input_len;
    r.prompt.resize(static_cast<size_t>(len));
    for (int32_t& t : r.prompt) t = token(rng);
    r.output_tokens = s.output_len;
  }
  return out;
}

void assign_poisson_arrivals(std::vector<BenchRequest>& requests, double rate_per_s, uint64_t seed) {
  std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ull);
  double t = 0;
  const bool all_at_once = std::isinf(rate_per_s);
  std::exponential_distribution<double> gap(all_at_once ? 1.0 : rate_per_s);
  for (BenchRequest& r : requests) {
    r.arrival_s = t;
    if (!all_at_once) t += gap(rng);
  }
}

Status BenchServeConfig::validate() const {
  if (base_url.rfind("http://", 0) != 0)
    return invalid_argument("--base-url must be http://HOST:PORT (https is not built in), got '" + base_url +
                            "'");
  if (max_concurrency < 0) return invalid_argument("--max-concurrency must be >= 0 (0: unlimited)");
  if (!(request_timeout_s > 0)) return invalid_argument("--request-timeout must be positive");
  if (!(max_duration_s > 0)) return invalid_argument("--max-duration must be positive");
  if (!(duration_s >= 0) || !std::isfinite(duration_s))
    return invalid_argument("--duration must be a finite number of seconds >= 0 (0: send each request once)");
  if (duration_s > max_duration_s) return invalid_argument("--duration must not exceed --max-duration");
  return Status::ok();
}

Result<BenchRun> run_bench_serve(const BenchServeConfig& c, const std::vector<BenchRequest>& requests) {
  if (Status st = c.validate(); !st.is_ok()) return st;
  if (!httplib::Client(strip_base_url(c.base_url)).is_valid())
    return invalid_argument("--base-url '" + c.base_url + "' is not a valid http://HOST:PORT");
  BenchRun run;
  if (c.model.empty()) {
    auto m = first_model(c);
    if (!m.is_ok()) return m.status();
    run.model = *m;
  } else {
    run.model = c.model;
  }
  if (requests.empty()) return invalid_argument("bench serve: no requests to send");
  const size_t n = requests.size();
  const bool repeat = c.duration_s > 0;
  const int64_t cap = c.max_concurrency > 0 ? c.max_concurrency : BenchServeConfig::kMaxWorkers;
  run.max_concurrency = std::max<int64_t>(1, repeat ? cap : std::min(static_cast<int64_t>(n), cap));
  // --duration: the k-th send is request k mod n, in its repeat k / n; a repeat starts
  // one list span plus one mean gap after the previous (0 for --request-rate inf).
  const double span_s =
      n > 1 ? requests.back().arrival_s * static_cast<double>(n) / static_cast<double>(n - 1) : 0;
  auto arrival_of = [&](size_t k) { return requests[k % n].arrival_s + static_cast<double>(k / n) * span_s; };

  // Requests are taken in arrival order by whichever worker is free: with all workers
  // busy a request waits, which is how --max-concurrency bounds what is in flight.
  std::atomic<size_t> next{0};
  const Clock::time_point start = Clock::now();
  auto at = [&](double s) {
    return start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  };
  const Clock::time_point deadline = at(c.max_duration_s);
  const Clock::time_point send_until = repeat ? at(c.duration_s) : deadline;
  std::vector<Clock::time_point> finished(static_cast<size_t>(run.max_concurrency), start);
  // Each worker's records with their send index, merged in send order at the end.
  std::vector<std::vector<std::pair<size_t, RequestRecord>>> sent(static_cast<size_t>(run.max_concurrency));
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(run.max_concurrency));
  for (int64_t w = 0; w < run.max_concurrency; ++w) {
    workers.emplace_back([&, w] {
      httplib::Client client = make_client(c);
      auto& mine = sent[static_cast<size_t>(w)];
      for (size_t k = next++; repeat || k < n; k = next++) {
        const BenchRequest& req = requests[k % n];
        const double arrival_s = arrival_of(k);
        if (repeat && at(arrival_s) >= send_until) break;  // the load's time is up
        RequestRecord rec;
        rec.prompt_tokens = static_cast<int64_t>(req.prompt.size());
        rec.max_tokens = req.output_tokens;
        rec.is_long = req.is_long;
        std::this_thread::sleep_until(std::min(at(arrival_s), send_until));
        if (Clock::now() >= send_until) {
          if (repeat) break;
          rec.error = "not sent: --max-duration reached";
        } else {
          send_one(client, c, run.model, req, start, deadline, rec);
          finished[static_cast<size_t>(w)] = Clock::now();
        }
        mine.emplace_back(k, std::move(rec));
      }
    });
  }
  for (std::thread& t : workers) t.join();
  std::vector<std::pair<size_t, RequestRecord>> all;
  for (auto& v : sent)
    for (auto& r : v) all.push_back(std::move(r));
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  run.records.reserve(all.size());
  for (auto& r : all) run.records.push_back(std::move(r.second));
  run.duration_s = seconds_between(start, *std::max_element(finished.begin(), finished.end()));
  return run;
}

}  // namespace longctx::apps
