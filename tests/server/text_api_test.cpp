// The API on a model with its real tokenizer: chat through the template, stop strings,
// echo and logprobs, several prompts, tokenize/detokenize, models, metrics.
#include "server_fixture.h"

namespace longctx::server::testing {
namespace {

class ServerTextTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    TestServerOptions o;
    o.model_dir = tiny_model_dir();
    o.server.served_model_name = "tiny";
    server_ = new TestServer(o);
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static TestServer* server_;
};
TestServer* ServerTextTest::server_ = nullptr;

TEST_F(ServerTextTest, TokenizeAndDetokenizeRoundTrip) {
  auto t = server_->post("/tokenize", {{"prompt", "Hello, world!"}, {"return_token_strs", true}});
  ASSERT_EQ(t.status, 200) << t.raw;
  EXPECT_EQ(t.body["tokens"], json({9707, 11, 1879, 0}));  // as HF tokenizers
  EXPECT_EQ(t.body["count"], 4);
  EXPECT_EQ(t.body["token_strs"][2], " world");
  auto d = server_->post("/detokenize", {{"tokens", t.body["tokens"]}});
  ASSERT_EQ(d.status, 200);
  EXPECT_EQ(d.body["prompt"], "Hello, world!");
  auto c = server_->post("/tokenize", {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}});
  ASSERT_EQ(c.status, 200) << c.raw;
  EXPECT_EQ(c.body["tokens"][0], 151644);  // <|im_start|>: the template was applied
}

TEST_F(ServerTextTest, ChatGoesThroughTheTemplate) {
  auto r = server_->post("/v1/chat/completions", {{"model", "tiny"},
                                                  {"messages", {{{"role", "user"}, {"content", "Hi"}}}},
                                                  {"max_tokens", 5},
                                                  {"ignore_eos", true},
                                                  {"return_token_ids", true},
                                                  {"logprobs", true},
                                                  {"top_logprobs", 2}});
  ASSERT_EQ(r.status, 200) << r.raw;
  auto tok = server_->post("/tokenize", {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}});
  EXPECT_EQ(r.body["prompt_token_ids"], tok.body["tokens"]);
  const json& c = r.body["choices"][0];
  EXPECT_EQ(c["token_ids"].size(), 5u);
  auto text = server_->post("/detokenize", {{"tokens", c["token_ids"]}});
  EXPECT_EQ(c["message"]["content"], text.body["prompt"]);
  ASSERT_EQ(c["logprobs"]["content"].size(), 5u);
  EXPECT_EQ(c["logprobs"]["content"][0]["top_logprobs"].size(), 2u);
  EXPECT_EQ(r.body["usage"]["prompt_tokens"], tok.body["count"]);
  // List-of-parts content and a tool definition render too.
  r = server_->post(
      "/v1/chat/completions",
      {{"messages", {{{"role", "user"}, {"content", {{{"type", "text"}, {"text", "Weather?"}}}}}}},
       {"tools",
        {{{"type", "function"},
          {"function", {{"name", "get_weather"}, {"parameters", {{"type", "object"}}}}}}}},
       {"max_tokens", 2}});
  EXPECT_EQ(r.status, 200) << r.raw;
}

TEST_F(ServerTextTest, StopStringEndsTheTextAndIsReported) {
  // Greedy output first, then stop at a piece of it.
  json req = {{"prompt", "Hello, my name is"}, {"max_tokens", 12}, {"temperature", 0}, {"ignore_eos", true}};
  auto full = server_->post("/v1/completions", req);
  ASSERT_EQ(full.status, 200);
  const std::string text = full.body["choices"][0]["text"];
  ASSERT_GE(text.size(), 6u);
  const std::string stop = text.substr(3, 3);
  req["stop"] = {stop};
  auto r = server_->post("/v1/completions", req);
  ASSERT_EQ(r.status, 200) << r.raw;
  const json& c = r.body["choices"][0];
  EXPECT_EQ(c["finish_reason"], "stop");
  EXPECT_EQ(c["stop_reason"], stop);
  EXPECT_EQ(c["text"], text.substr(0, text.find(stop)));
}

TEST_F(ServerTextTest, PromptsFanOutIntoChoicesWithEchoAndLogprobs) {
  auto r = server_->post("/v1/completions", {{"prompt", {"Hello", "The sky is"}},
                                             {"max_tokens", 3},
                                             {"n", 2},
                                             {"echo", true},
                                             {"logprobs", 1},
                                             {"ignore_eos", true}});
  ASSERT_EQ(r.status, 200) << r.raw;
  ASSERT_EQ(r.body["choices"].size(), 4u);
  for (int i = 0; i < 4; ++i) {
    const json& c = r.body["choices"][static_cast<size_t>(i)];
    EXPECT_EQ(c["index"], i);
    const std::string prompt = i < 2 ? "Hello" : "The sky is";
    EXPECT_EQ(c["text"].get<std::string>().rfind(prompt, 0), 0u) << c["text"];
    const json& lp = c["logprobs"];
    const size_t prompt_len = i < 2 ? 1 : 3;
    ASSERT_EQ(lp["tokens"].size(), prompt_len + 3);
    EXPECT_TRUE(lp["token_logprobs"][0].is_null());  // the first prompt token has none
    EXPECT_TRUE(lp["token_logprobs"][prompt_len].is_number());
    EXPECT_EQ(lp["top_logprobs"][prompt_len].size(), 1u);
  }
  EXPECT_EQ(r.body["usage"]["completion_tokens"], 12);
  EXPECT_EQ(r.body["usage"]["prompt_tokens"], 4);
}

TEST_F(ServerTextTest, RepeatedPromptHitsThePrefixCache) {
  std::vector<int32_t> prompt;
  for (int i = 0; i < 80; ++i) prompt.push_back(1000 + i);
  json req = {{"prompt", prompt}, {"max_tokens", 2}};
  ASSERT_EQ(server_->post("/v1/completions", req).status, 200);
  auto r = server_->post("/v1/completions", req);
  ASSERT_EQ(r.status, 200);
  EXPECT_GE(r.body["usage"]["prompt_tokens_details"]["cached_tokens"].get<int64_t>(), 64);
  EXPECT_GT(server_->metric("vllm:prefix_cache_hits_total"), 0);
}

TEST_F(ServerTextTest, ModelsVersionAndMetrics) {
  auto m = server_->get("/v1/models");
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(m.body["data"][0]["id"], "tiny");
  EXPECT_EQ(server_->get("/v1/models/tiny").body["id"], "tiny");
  EXPECT_TRUE(server_->get("/version").body["version"].is_string());
  ASSERT_EQ(server_->post("/v1/completions", {{"prompt", "Hi"}, {"max_tokens", 3}}).status, 200);
  auto metrics = server_->get("/metrics");
  ASSERT_EQ(metrics.status, 200);
  for (const char* name :
       {"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
        "vllm:prompt_tokens_total", "vllm:generation_tokens_total", "vllm:time_to_first_token_seconds_bucket",
        "vllm:inter_token_latency_seconds_bucket", "vllm:e2e_request_latency_seconds_count",
        "vllm:request_queue_time_seconds_sum", "vllm:prefix_cache_queries_total",
        "vllm:prefix_cache_hits_total", "vllm:num_preemptions_total", "longctx:parallel_layout"})
    EXPECT_NE(metrics.raw.find(std::string(name) + "{model_name=\"tiny\""), std::string::npos) << name;
  EXPECT_NE(metrics.raw.find("# TYPE vllm:time_to_first_token_seconds histogram"), std::string::npos);
  EXPECT_NE(metrics.raw.find("le=\"+Inf\""), std::string::npos);
  EXPECT_GE(server_->metric("vllm:generation_tokens_total"), 3);
}

}  // namespace
}  // namespace longctx::server::testing
