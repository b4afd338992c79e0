// Every bad input of the server issue gets a clear 4xx in the OpenAI error shape, and
// the server then serves a valid request.
#include <unistd.h>

#include <chrono>
#include <thread>

#include "server_fixture.h"

namespace longctx::server::testing {
namespace {

const httplib::Headers kKey = {{"Authorization", "Bearer sesame"}};

void expect_error(const TestServer::Reply& r, int status, const std::string& what) {
  EXPECT_EQ(r.status, status) << what << ": " << r.raw;
  ASSERT_TRUE(r.body.is_object()) << what << ": " << r.raw;
  ASSERT_TRUE(r.body.contains("error")) << what;
  const json& e = r.body["error"];
  EXPECT_TRUE(e["message"].is_string() && !e["message"].get<std::string>().empty()) << what;
  EXPECT_TRUE(e.contains("type") && e.contains("param") && e.contains("code")) << what;
}

TestServer::Reply post_raw(const TestServer& s, const std::string& body, const httplib::Headers& h = kKey) {
  auto c = s.client();
  auto r = c.Post("/v1/completions", h, body, "application/json");
  TestServer::Reply out;
  out.status = r ? r->status : -1;
  out.raw = r ? r->body : httplib::to_string(r.error());
  out.body = json::parse(out.raw, nullptr, false);
  return out;
}

TEST(ServerBadInput, EachGetsAClear4xxAndTheServerStaysUp) {
  TestServerOptions o;
  o.model_dir = tiny_model_dir();
  o.server.api_key = "sesame";
  TestServer s(o);
  auto completion = [&](json body) { return s.post("/v1/completions", body, kKey); };
  auto chat = [&](json messages) {
    return s.post("/v1/chat/completions", {{"messages", messages}, {"max_tokens", 2}}, kKey);
  };

  expect_error(post_raw(s, "{\"prompt\": \"hi\", "), 400, "malformed JSON");
  expect_error(post_raw(s, "[1, 2]"), 400, "not an object");
  expect_error(post_raw(s, std::string(10 * 1024 * 1024, 'a')), 413, "10 MB body");
  expect_error(post_raw(s, "{\"prompt\": \"\xff\xfe\", \"max_tokens\": 2}"), 400, "invalid UTF-8");
  expect_error(completion({{"prompt", "hi"}, {"temperature", "hot"}}), 400, "wrong type: temperature");
  expect_error(completion({{"prompt", "hi"}, {"stream", "yes"}}), 400, "wrong type: stream");
  expect_error(completion({{"prompt", 5}}), 400, "wrong type: prompt");
  expect_error(completion({{"prompt", {1, "a"}}}), 400, "wrong type: mixed prompt");
  expect_error(completion({{"prompt", "hi"}, {"max_tokens", "ten"}}), 400, "wrong type: max_tokens");
  expect_error(completion({{"prompt", "hi"}, {"stop", {1, 2}}}), 400, "wrong type: stop");
  expect_error(completion({{"prompt", "hi"}, {"stream_options", 1}}), 400, "wrong type: stream_options");
  expect_error(completion({{"prompt", "hi"}, {"max_tokens", -1}}), 400, "negative max_tokens");
  expect_error(completion({{"prompt", "hi"}, {"max_tokens", 0}}), 400, "zero max_tokens");
  expect_error(completion({{"prompt", "hi"}, {"max_tokens", 1000000000}}), 400, "huge max_tokens");
  expect_error(completion({{"prompt", "hi"}, {"max_tokens", 40000}}), 400, "beyond the context");
  expect_error(completion({{"prompt", "hi"}, {"n", 1000}}), 400, "n = 1000");
  expect_error(completion({{"prompt", "hi"}, {"logprobs", 1000}}), 400, "logprobs = 1000");
  expect_error(completion({{"prompt", "hi"}, {"prompt_logprobs", 1000}}), 400, "prompt_logprobs = 1000");
  expect_error(completion({{"prompt", "hi"}, {"stop", std::vector<std::string>(100, "x")}}), 400,
               "100 stop strings");
  expect_error(completion({{"prompt", "hi"}, {"stop", std::string(5000, 'x')}}), 400, "a long stop string");
  expect_error(completion({{"prompt", {1, 2, 99999999}}}), 400, "token id out of the vocabulary");
  expect_error(completion({{"prompt", {1, -2}}}), 400, "negative token id");
  expect_error(completion({{"prompt", {1, int64_t{1} << 40}}}), 400, "token id beyond int32");
  expect_error(completion({{"prompt", json::array()}}), 400, "empty prompt");
  expect_error(completion({{"prompt", std::vector<std::string>(100, "a")}}), 400, "too many prompts");
  expect_error(completion({{"prompt", "hi"}, {"stop_token_ids", {-1}}}), 400,
               "stop token out of the vocabulary");
  expect_error(completion({{"prompt", "hi"}, {"temperature", -1}}), 400, "negative temperature");
  expect_error(completion({{"prompt", "hi"}, {"top_p", 5}}), 400, "top_p beyond 1");
  expect_error(completion({{"model", "gpt-4"}, {"prompt", "hi"}}), 404, "unknown model");

  expect_error(chat(json::array()), 400, "no messages");
  expect_error(chat("hello"), 400, "messages not a list");
  expect_error(chat({{{"content", "hi"}}}), 400, "message without role");
  expect_error(chat({{{"role", "user"}}}), 400, "message without content");
  expect_error(chat({{{"role", 5}, {"content", "hi"}}}), 400, "role not a string");
  expect_error(chat({{{"role", "user"}, {"content", 5}}}), 400, "content not a string");
  expect_error(chat({"hello"}), 400, "message not an object");
  expect_error(chat({{{"role", "user"}, {"content", {{{"type", "image_url"}}}}}}), 400, "image part");
  expect_error(chat({{{"role", "user"}, {"content", {{{"type", "text"}, {"text", 3}}}}}}), 400,
               "text part not a string");
  expect_error(chat({{{"role", "assistant"}, {"content", nullptr}, {"tool_calls", {{{"function", 3}}}}}}),
               400, "malformed tool call");
  expect_error(chat(std::vector<json>(2000, {{"role", "user"}, {"content", "x"}})), 400, "too many messages");
  expect_error(
      s.post("/v1/chat/completions",
             {{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"tools", {{{"type", "function"}}}}},
             kKey),
      400, "malformed tool");
  expect_error(s.post("/v1/chat/completions",
                      {{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"tools", 7}}, kKey),
               400, "tools not a list");
  expect_error(s.post("/tokenize", {{"prompt", 5}}, kKey), 400, "tokenize: prompt not a string");
  expect_error(s.post("/tokenize", {{"prompt", "hi"}, {"return_token_strs", "yes"}}, kKey), 400,
               "tokenize: return_token_strs not a boolean");
  expect_error(s.post("/detokenize", {{"tokens", "1 2"}}, kKey), 400, "detokenize: tokens not a list");
  expect_error(s.post("/detokenize", {{"tokens", {1, 999999999}}}, kKey), 400,
               "detokenize: out of the vocabulary");
  expect_error(s.get("/v1/no-such-route", kKey), 404, "unknown route");
  expect_error(s.get("/v1/models/gpt-4", kKey), 404, "unknown model card");

  // The API key, on every route but /health.
  const httplib::Headers wrong = {{"Authorization", "Bearer nope"}};
  for (const httplib::Headers& h : {httplib::Headers{}, wrong}) {
    expect_error(s.get("/v1/models", h), 401, "models without key");
    expect_error(s.get("/metrics", h), 401, "metrics without key");
    expect_error(s.get("/version", h), 401, "version without key");
    expect_error(s.post("/v1/completions", {{"prompt", "hi"}}, h), 401, "completions without key");
    expect_error(s.post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "x"}}}}}, h),
                 401, "chat without key");
    expect_error(s.post("/tokenize", {{"prompt", "hi"}}, h), 401, "tokenize without key");
    expect_error(s.post("/detokenize", {{"tokens", {1}}}, h), 401, "detokenize without key");
    EXPECT_EQ(s.get("/health", h).status, 200);
  }

  // Headers: a 1 MB header line, and many lines adding up past --max-header-bytes.
  {
    int fd = raw_connect(s.port());
    ASSERT_GE(fd, 0);
    raw_send(fd, "GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(1 << 20, 'a') + "\r\n\r\n");
    const std::string got = raw_read_until(fd, "\r\n\r\n");
    ::close(fd);
    EXPECT_EQ(got.rfind("HTTP/1.1 4", 0), 0u) << got.substr(0, 200);
  }
  {
    httplib::Headers many = kKey;
    for (int i = 0; i < 100; ++i) many.emplace("X-Pad-" + std::to_string(i), std::string(1000, 'p'));
    expect_error(s.get("/v1/models", many), 431, "headers too large");
  }

  // Still serving.
  auto ok = completion({{"prompt", "Hello"}, {"max_tokens", 4}});
  EXPECT_EQ(ok.status, 200) << ok.raw;
  EXPECT_EQ(ok.body["usage"]["completion_tokens"], 4);
  EXPECT_EQ(s.get("/health").status, 200);
}

TEST(ServerBadInput, FullQueueIs429) {
  TestServerOptions o;
  o.model_dir = tiny_model_dir();
  o.engine.max_waiting = 1;
  o.engine.scheduler.max_num_seqs = 1;
  TestServer s(o);
  // One runs, one waits; the third finds the queue full.
  std::vector<int> fds;
  const std::string body =
      json({{"prompt", "x"}, {"max_tokens", 5000}, {"ignore_eos", true}, {"stream", true}}).dump();
  for (int i = 0; i < 2; ++i) {
    fds.push_back(raw_connect(s.port()));
    raw_send(fds.back(), http_post_text("/v1/completions", body));
    if (i == 0) {
      ASSERT_NE(raw_read_until(fds[0], "data: ").find("data: "), std::string::npos);  // running
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (s.metric("vllm:num_requests_waiting") < 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(s.metric("vllm:num_requests_waiting"), 1);
  auto r = s.post("/v1/completions", {{"prompt", "y"}, {"max_tokens", 2}});
  expect_error(r, 429, "queue full");
  for (int fd : fds) ::close(fd);
}

}  // namespace
}  // namespace longctx::server::testing
