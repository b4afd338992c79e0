// `longctx bench serve`'s client against a server in this process on the tiny fixture
// model: every request succeeds, the token counts are exact, the latencies are ordered
// as they must be, and the JSON carries vLLM's fields.
#include <cmath>
#include <limits>

#include "apps/bench_serve_client.h"
#include "apps/bench_serve_report.h"
#include "server_fixture.h"

namespace longctx::server::testing {
namespace {

using apps::BenchRequest;
using apps::BenchRun;
using apps::BenchServeConfig;

constexpr int64_t kPrompts = 20, kInputLen = 32, kOutputLen = 12;

TestServerOptions fixture() {
  TestServerOptions o;
  o.model_dir = kHf + "llama_gqa";
  o.skip_tokenizer_init = true;
  return o;
}

std::vector<BenchRequest> random_requests(bool mix, double rate) {
  apps::RandomDatasetSpec spec;
  spec.num_prompts = kPrompts;
  spec.input_len = kInputLen;
  spec.output_len = kOutputLen;
  spec.mix = mix;
  spec.vocab_size = 512;  // the fixture's vocabulary
  spec.seed = 7;
  auto r = apps::make_random_requests(spec).value();
  apps::assign_poisson_arrivals(r, rate, spec.seed);
  return r;
}

BenchServeConfig client_for(const TestServer& server) {
  BenchServeConfig c;
  c.base_url = "http://127.0.0.1:" + std::to_string(server.port()) + "/v1";
  c.request_timeout_s = 60;
  c.max_duration_s = 120;
  return c;
}

void expect_all_succeeded(const BenchRun& run, const TestServer& server) {
  EXPECT_EQ(run.model, server.model().name());
  ASSERT_EQ(run.records.size(), static_cast<size_t>(kPrompts));
  for (const apps::RequestRecord& r : run.records) {
    EXPECT_TRUE(r.success) << r.error;
    EXPECT_EQ(r.output_tokens, kOutputLen);
    EXPECT_GT(r.ttft_s, 0);
    EXPECT_LE(r.ttft_s, r.e2e_s);
    // One gap per content chunk after the first; the server streams one token per step.
    EXPECT_GE(r.itl_s.size(), 1u);
    EXPECT_LE(r.itl_s.size(), static_cast<size_t>(kOutputLen - 1));
  }
  const apps::BenchSummary s = apps::summarize(run, std::numeric_limits<double>::infinity(), false);
  EXPECT_EQ(s.completed, kPrompts);
  EXPECT_EQ(s.failed, 0);
  EXPECT_EQ(s.total_output_tokens, kPrompts * kOutputLen);
  EXPECT_GT(s.output_throughput, 0);
  EXPECT_GT(s.input_throughput, 0);
  EXPECT_GT(s.request_throughput, 0);
  EXPECT_LE(s.ttft.mean_ms, s.e2el.mean_ms);
  EXPECT_LE(s.ttft.median_ms, s.ttft.p99_ms);
  EXPECT_GT(s.tpot.mean_ms, 0);
  EXPECT_GT(s.itl.mean_ms, 0);
}

TEST(BenchServe, AllAtOnceSucceedsWithExactTokenCounts) {
  TestServer server(fixture());
  auto run = apps::run_bench_serve(client_for(server), random_requests(false, INFINITY));
  ASSERT_TRUE(run.is_ok()) << run.status().to_string();
  expect_all_succeeded(*run, server);
  EXPECT_EQ(run->max_concurrency, kPrompts);
}

TEST(BenchServe, PoissonRateWithConcurrencyLimitSucceeds) {
  TestServer server(fixture());
  const auto requests = random_requests(false, 50);
  EXPECT_EQ(requests.front().arrival_s, 0);
  EXPECT_GT(requests.back().arrival_s, 0);
  BenchServeConfig c = client_for(server);
  c.max_concurrency = 4;
  auto run = apps::run_bench_serve(c, requests);
  ASSERT_TRUE(run.is_ok()) << run.status().to_string();
  expect_all_succeeded(*run, server);
  EXPECT_EQ(run->max_concurrency, 4);
  // A request is never sent before its arrival time.
  for (size_t i = 0; i < requests.size(); ++i)
    EXPECT_GE(run->records[i].start_s + 1e-3, requests[i].arrival_s);
}

TEST(BenchServe, MixReportsShortAndLongTtftApartAndJsonHasVllmFields) {
  TestServer server(fixture());
  const auto requests = random_requests(true, INFINITY);
  int64_t n_long = 0;
  for (const BenchRequest& r : requests) {
    n_long += r.is_long;
    EXPECT_EQ(r.prompt.size(), static_cast<size_t>(r.is_long ? 8 * kInputLen : kInputLen));
  }
  EXPECT_EQ(n_long, 1);  // 5% of 20
  auto run = apps::run_bench_serve(client_for(server), requests);
  ASSERT_TRUE(run.is_ok()) << run.status().to_string();
  const apps::BenchSummary s = apps::summarize(*run, INFINITY, /*mix=*/true);
  EXPECT_EQ(s.completed, kPrompts);
  EXPECT_EQ(s.short_ttft.count, kPrompts - 1);
  EXPECT_EQ(s.long_ttft.count, 1);
  EXPECT_EQ(s.total_input_tokens, (kPrompts - 1) * kInputLen + 8 * kInputLen);

  const auto j = apps::to_json(s, *run);
  for (const char* key : {"completed",
                          "failed",
                          "duration",
                          "total_input_tokens",
                          "total_output_tokens",
                          "request_throughput",
                          "input_throughput",
                          "output_throughput",
                          "total_token_throughput",
                          "mean_ttft_ms",
                          "median_ttft_ms",
                          "p99_ttft_ms",
                          "mean_tpot_ms",
                          "median_tpot_ms",
                          "p99_tpot_ms",
                          "mean_itl_ms",
                          "median_itl_ms",
                          "p99_itl_ms",
                          "mean_e2el_ms",
                          "mean_short_ttft_ms",
                          "p99_short_ttft_ms",
                          "mean_long_ttft_ms",
                          "input_lens",
                          "output_lens",
                          "ttfts",
                          "itls",
                          "errors"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["request_rate"], "inf");
  EXPECT_EQ(j["total_output_tokens"], kPrompts * kOutputLen);
  EXPECT_EQ(j["ttfts"].size(), static_cast<size_t>(kPrompts));
  // It round-trips as JSON text (no inf/NaN written).
  EXPECT_FALSE(nlohmann::json::parse(j.dump(), nullptr, false).is_discarded());

  const std::string table = apps::format_table(s);
  EXPECT_NE(table.find("Successful requests:"), std::string::npos);
  EXPECT_NE(table.find("TTFT of 19 short requests"), std::string::npos);
}

TEST(BenchServe, UnreachableServerAndBadRequestsAreReportedNotHung) {
  BenchServeConfig c;
  c.base_url = "https://example.com";
  EXPECT_FALSE(c.validate().is_ok());

  TestServer server(fixture());
  c = client_for(server);
  c.model = "no-such-model";
  auto run = apps::run_bench_serve(c, random_requests(false, INFINITY));
  ASSERT_TRUE(run.is_ok());
  for (const apps::RequestRecord& r : run->records) {
    EXPECT_FALSE(r.success);
    EXPECT_NE(r.error.find("HTTP 404"), std::string::npos) << r.error;
  }
  EXPECT_EQ(apps::summarize(*run, INFINITY, false).failed, kPrompts);
}

TEST(BenchServe, DurationRepeatsTheRequestsUntilTimeIsUp) {
  TestServer server(fixture());
  BenchServeConfig c = client_for(server);
  c.max_concurrency = 8;  // more workers than sends: each send leaves at its arrival
  c.duration_s = 2.5;
  // Two requests 0.5 s apart: the list spans 1 s (its last arrival plus one mean gap),
  // so sends are due at 0, 0.5, 1, 1.5 and 2 s, alternating the two prompts; the sixth
  // (2.5 s) is past --duration and never sent.
  std::vector<BenchRequest> reqs(2);
  reqs[0].prompt.assign(8, 3);
  reqs[1].prompt.assign(16, 5);
  reqs[0].output_tokens = reqs[1].output_tokens = 4;
  reqs[1].arrival_s = 0.5;
  auto run = apps::run_bench_serve(c, reqs);
  ASSERT_TRUE(run.is_ok()) << run.status().message();
  ASSERT_EQ(run->records.size(), 5u);
  for (size_t k = 0; k < run->records.size(); ++k) {
    const apps::RequestRecord& r = run->records[k];
    EXPECT_TRUE(r.success) << r.error;
    EXPECT_EQ(r.prompt_tokens, k % 2 == 0 ? 8 : 16);
    EXPECT_EQ(r.output_tokens, 4);
    EXPECT_GE(r.start_s, 0.5 * static_cast<double>(k));  // not before its arrival
    EXPECT_LT(r.start_s, c.duration_s);
  }
  const apps::BenchSummary s = apps::summarize(*run, 2.0, false);
  EXPECT_EQ(s.completed, 5);
  EXPECT_EQ(s.failed, 0);

  c.duration_s = c.max_duration_s + 1;
  EXPECT_FALSE(c.validate().is_ok());
  c.duration_s = -1;
  EXPECT_FALSE(c.validate().is_ok());
  c.duration_s = 1;
  EXPECT_FALSE(apps::run_bench_serve(c, {}).is_ok());
}

TEST(BenchServe, LatencyStatsMatchNumpyPercentiles) {
  const apps::LatencyStats s = apps::latency_stats({0.004, 0.001, 0.003, 0.002});
  EXPECT_DOUBLE_EQ(s.mean_ms, 2.5);
  EXPECT_DOUBLE_EQ(s.median_ms, 2.5);
  EXPECT_NEAR(s.p99_ms, 3.97, 1e-9);  // numpy.percentile([1,2,3,4], 99)
  EXPECT_EQ(apps::latency_stats({}).count, 0);
}

}  // namespace
}  // namespace longctx::server::testing
