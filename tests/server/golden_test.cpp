// Every fixture model served with --skip-tokenizer-init: 16 concurrent greedy requests
// (token-id prompts, return_token_ids) return exactly the transformers greedy tokens.
#include <thread>

#include "server_fixture.h"

namespace longctx::server::testing {
namespace {

class ServerGoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ServerGoldenTest, SixteenConcurrentGreedyRequestsMatchTransformers) {
  TestServerOptions o;
  o.model_dir = kHf + GetParam();
  o.skip_tokenizer_init = true;
  o.engine.num_kv_blocks = 2048;
  TestServer server(o);
  const std::vector<Golden> g = goldens(GetParam());
  ASSERT_EQ(g.size(), 4u);

  std::vector<TestServer::Reply> replies(16);
  std::vector<std::thread> clients;
  for (size_t i = 0; i < replies.size(); ++i) {
    clients.emplace_back([&, i] {
      const Golden& gi = g[i % g.size()];
      replies[i] = server.post("/v1/completions", {{"model", GetParam()},
                                                   {"prompt", gi.ids},
                                                   {"max_tokens", gi.greedy.size()},
                                                   {"temperature", 0},
                                                   {"ignore_eos", true},
                                                   {"return_token_ids", true}});
    });
  }
  for (auto& t : clients) t.join();
  for (size_t i = 0; i < replies.size(); ++i) {
    const Golden& gi = g[i % g.size()];
    const TestServer::Reply& r = replies[i];
    ASSERT_EQ(r.status, 200) << "request " << i << ": " << r.raw;
    const json& c = r.body["choices"][0];
    EXPECT_EQ(c["token_ids"].get<std::vector<int32_t>>(), gi.greedy) << "request " << i;
    EXPECT_EQ(c["prompt_token_ids"].get<std::vector<int32_t>>(), gi.ids);
    EXPECT_EQ(c["text"], "");  // no tokenizer: token ids only
    EXPECT_EQ(c["finish_reason"], "length");
    EXPECT_EQ(r.body["usage"]["prompt_tokens"], gi.ids.size());
    EXPECT_EQ(r.body["usage"]["completion_tokens"], gi.greedy.size());
    EXPECT_EQ(r.body["model"], GetParam());
  }
  // Text needs a tokenizer: a clear 400, not a crash.
  auto r = server.post("/v1/completions", {{"prompt", "hello"}});
  EXPECT_EQ(r.status, 400) << r.raw;
  r = server.post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "hi"}}}}});
  EXPECT_EQ(r.status, 400) << r.raw;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ServerGoldenTest,
                         ::testing::Values("llama_gqa", "qwen2_bias_tied", "qwen3_qknorm"));

}  // namespace
}  // namespace longctx::server::testing
