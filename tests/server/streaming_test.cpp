// Streaming: SSE deltas concatenated equal the whole response for the same seed, usage
// is right; clients that drop mid-stream abort their requests and free their KV
// blocks at once; SIGTERM's drain finishes or cancels in-flight streams.
#include <unistd.h>

#include <chrono>
#include <thread>

#include "server_fixture.h"

namespace longctx::server::testing {
namespace {

struct Streamed {
  std::map<int64_t, std::string> text;
  std::map<int64_t, std::vector<int32_t>> tokens;
  std::map<int64_t, std::string> finish;
  json usage;
  bool done = false;
  int usage_chunks = 0;
};

Streamed collect(const std::string& body) {
  Streamed s;
  for (const std::string& d : sse_data(body)) {
    if (d == "[DONE]") {
      s.done = true;
      continue;
    }
    json j = json::parse(d);
    if (j["choices"].empty()) {
      s.usage = j["usage"];
      ++s.usage_chunks;
      continue;
    }
    for (const json& c : j["choices"]) {
      const int64_t i = c["index"];
      s.text[i] += c.contains("delta") ? c["delta"].value("content", "") : c["text"].get<std::string>();
      for (int32_t t : c.value("token_ids", json::array())) s.tokens[i].push_back(t);
      if (!c["finish_reason"].is_null()) s.finish[i] = c["finish_reason"];
    }
  }
  return s;
}

TestServerOptions tiny() {
  TestServerOptions o;
  o.model_dir = tiny_model_dir();
  return o;
}

TEST(ServerStreaming, CompletionDeltasEqualTheWholeResponse) {
  TestServer server(tiny());
  json req = {{"prompt", "Once upon a time"},
              {"max_tokens", 24},
              {"temperature", 0.9},
              {"seed", 1234},
              {"n", 2},
              {"ignore_eos", true},
              {"return_token_ids", true}};
  auto whole = server.post("/v1/completions", req);
  ASSERT_EQ(whole.status, 200) << whole.raw;
  req["stream"] = true;
  req["stream_options"] = {{"include_usage", true}};
  auto streamed = server.post("/v1/completions", req);
  ASSERT_EQ(streamed.status, 200) << streamed.raw;
  Streamed s = collect(streamed.raw);
  EXPECT_TRUE(s.done);
  EXPECT_EQ(s.usage_chunks, 1);
  ASSERT_EQ(whole.body["choices"].size(), 2u);
  for (int64_t i = 0; i < 2; ++i) {
    const json& c = whole.body["choices"][static_cast<size_t>(i)];
    EXPECT_EQ(s.text[i], c["text"].get<std::string>()) << "choice " << i;
    EXPECT_EQ(s.tokens[i], c["token_ids"].get<std::vector<int32_t>>());
    EXPECT_EQ(s.finish[i], "length");
  }
  EXPECT_NE(whole.body["choices"][0]["token_ids"], whole.body["choices"][1]["token_ids"]);  // two streams
  EXPECT_EQ(s.usage["completion_tokens"], 48);
  EXPECT_EQ(s.usage["prompt_tokens"], whole.body["usage"]["prompt_tokens"]);
  EXPECT_EQ(s.usage["total_tokens"], s.usage["prompt_tokens"].get<int64_t>() + 48);
  EXPECT_TRUE(s.usage["prompt_tokens_details"].contains("cached_tokens"));
}

TEST(ServerStreaming, ChatDeltasEqualTheWholeResponse) {
  TestServer server(tiny());
  json req = {{"messages",
               {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hello!"}}}},
              {"max_completion_tokens", 16},
              {"temperature", 0.7},
              {"seed", 99},
              {"ignore_eos", true}};
  auto whole = server.post("/v1/chat/completions", req);
  ASSERT_EQ(whole.status, 200) << whole.raw;
  EXPECT_EQ(whole.body["object"], "chat.completion");
  EXPECT_EQ(whole.body["choices"][0]["message"]["role"], "assistant");
  req["stream"] = true;
  req["stream_options"] = {{"include_usage", true}};
  auto streamed = server.post("/v1/chat/completions", req);
  ASSERT_EQ(streamed.status, 200);
  Streamed s = collect(streamed.raw);
  EXPECT_EQ(s.text[0], whole.body["choices"][0]["message"]["content"].get<std::string>());
  EXPECT_EQ(s.usage["completion_tokens"], 16);
  EXPECT_EQ(s.usage["prompt_tokens"], whole.body["usage"]["prompt_tokens"]);
  // The first chunk carries the role.
  json first = json::parse(sse_data(streamed.raw).front());
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(first["object"], "chat.completion.chunk");
}

TEST(ServerStreaming, DisconnectedClientsFreeTheirKvAtOnce) {
  TestServer server(tiny());
  const double idle = server.metric("vllm:kv_cache_usage_perc");
  ASSERT_GE(idle, 0);
  const std::string body =
      json({{"prompt", "The history of"}, {"max_tokens", 4000}, {"ignore_eos", true}, {"stream", true}})
          .dump();
  std::vector<int> fds;
  for (int i = 0; i < 20; ++i) {
    int fd = raw_connect(server.port());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(raw_send(fd, http_post_text("/v1/completions", body)));
    fds.push_back(fd);
  }
  for (int fd : fds) {
    const std::string got = raw_read_until(fd, "data: ");
    ASSERT_NE(got.find("data: "), std::string::npos) << got;
  }
  EXPECT_GT(server.metric("vllm:kv_cache_usage_perc"), idle);
  for (int fd : fds) ::close(fd);  // the clients drop mid-stream
  const double usage = server.wait_for_idle_kv(idle, std::chrono::seconds(1));
  EXPECT_EQ(usage, idle) << "KV usage did not return to idle within 1 s";
  EXPECT_EQ(server.metric("longctx:server_active_requests"), 0);
  EXPECT_GE(server.metric("longctx:requests_aborted_total"), 20);
  // And the server goes on serving.
  auto r = server.post("/v1/completions", {{"prompt", "Hi"}, {"max_tokens", 3}});
  EXPECT_EQ(r.status, 200) << r.raw;
}

TEST(ServerStreaming, DrainCancelsWhatOutlivesTheDeadline) {
  TestServerOptions o = tiny();
  o.server.drain_timeout_s = 2.0;  // far below the 10000 tokens' run time, far above scheduling noise
  TestServer server(o);
  std::string streamed;
  std::thread client([&] {
    auto c = server.client();
    auto r =
        c.Post("/v1/completions",
               json({{"prompt", "A"}, {"max_tokens", 10000}, {"ignore_eos", true}, {"stream", true}}).dump(),
               "application/json");
    if (r) streamed = r->body;
  });
  for (int i = 0; i < 2000 && server.model().loop().num_active() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(server.model().loop().num_active(), 1);
  std::thread drain([&] { server.http().drain(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(server.get("/health").status, 503);
  EXPECT_EQ(server.post("/v1/completions", {{"prompt", "B"}}).status, 503);
  drain.join();
  client.join();
  Streamed s = collect(streamed);
  EXPECT_TRUE(s.done);
  EXPECT_EQ(s.finish[0], "abort");
  EXPECT_EQ(server.model().loop().num_active(), 0);
}

TEST(ServerStreaming, HealthIs503WhileLoading) {
  ServerConfig cfg;
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  HttpServer http(cfg);
  const int port = http.bind().value();
  http.start();
  httplib::Client c("127.0.0.1", port);
  auto r = c.Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  r = c.Post("/v1/completions", R"({"prompt": [1]})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_NE(r->body.find("loading"), std::string::npos);
  http.stop();
}

}  // namespace
}  // namespace longctx::server::testing
