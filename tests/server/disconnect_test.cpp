// Whole (non-streaming) responses whose clients go away: nothing is written until the
// end, so the handler probes the connection while it waits (server/connection_probe.h);
// an abandoned request is aborted and its KV blocks are freed at once, as a dropped
// stream's are (streaming_test.cpp), and a connection still in use is left alone.
#include <unistd.h>

#include <chrono>
#include <thread>

#include "server/connection_probe.h"
#include "server_fixture.h"

namespace longctx::server::testing {
namespace {

TestServerOptions tiny() {
  TestServerOptions o;
  o.model_dir = tiny_model_dir();
  return o;
}

TEST(ServerDisconnect, NonStreamingClientsThatLeaveAreAbortedAtOnce) {
  TestServer server(tiny());
  const double idle = server.metric("vllm:kv_cache_usage_perc");
  ASSERT_GE(idle, 0);
  const double aborted_before = server.metric("longctx:requests_aborted_total");
  // Far more tokens than the test lasts: only an abort ends these requests in time.
  const std::string body =
      json({{"prompt", "The history of"}, {"max_tokens", 4000}, {"ignore_eos", true}}).dump();
  std::vector<int> fds;
  for (int i = 0; i < 20; ++i) {
    int fd = raw_connect(server.port());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(raw_send(fd, http_post_text("/v1/completions", body)));
    fds.push_back(fd);
  }
  // All twenty are generating (nothing comes back on the sockets until the end).
  for (int i = 0; i < 6000 && server.model().loop().num_active() < 20; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(server.model().loop().num_active(), 20);
  EXPECT_GT(server.metric("vllm:kv_cache_usage_perc"), idle);
  for (int fd : fds) ::close(fd);  // the clients give up before the answer
  const double usage = server.wait_for_idle_kv(idle, std::chrono::seconds(1));
  EXPECT_EQ(usage, idle) << "KV usage did not return to idle within 1 s";
  EXPECT_EQ(server.metric("longctx:server_active_requests"), 0);
  EXPECT_GE(server.metric("longctx:requests_aborted_total") - aborted_before, 20);
  // And the server goes on serving, whole responses included.
  auto r = server.post("/v1/completions", {{"prompt", "Hi"}, {"max_tokens", 3}, {"ignore_eos", true}});
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(r.body["usage"]["completion_tokens"], 3);
}

TEST(ServerDisconnect, AClientThatSendsItsNextRequestEarlyIsNotTakenAsGone) {
  TestServer server(tiny());
  // The next request arrives on the connection while the first generates: it waits
  // unread in the socket, which is data, not a hang-up; both are answered in full.
  const std::string first = json({{"prompt", "One"}, {"max_tokens", 40}, {"ignore_eos", true}}).dump();
  const std::string second = json({{"prompt", "Two"}, {"max_tokens", 5}, {"ignore_eos", true}}).dump();
  int fd = raw_connect(server.port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(raw_send(fd, http_post_text("/v1/completions", first)));
  for (int i = 0; i < 6000 && server.model().loop().num_active() < 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(raw_send(fd, http_post_text("/v1/completions", second)));
  const std::string got = raw_read_until(fd, "\"completion_tokens\":5,", 60000);
  ::close(fd);
  EXPECT_NE(got.find("\"completion_tokens\":40,"), std::string::npos) << got;
  EXPECT_NE(got.find("\"completion_tokens\":5,"), std::string::npos) << got;
  EXPECT_EQ(got.find("\"abort\""), std::string::npos) << got;
}

TEST(ServerDisconnect, ProbeFindsNoConnectionForAnUnknownPeer) {
  // A peer no socket of this process has: nothing found, never reported gone.
  ConnectionProbe p = ConnectionProbe::find("127.0.0.1", 1, "127.0.0.1", 1);
  EXPECT_FALSE(p.found());
  EXPECT_FALSE(p.client_gone());
}

}  // namespace
}  // namespace longctx::server::testing
