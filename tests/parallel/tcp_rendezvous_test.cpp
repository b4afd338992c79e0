#include "parallel/tcp_rendezvous.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <future>
#include <string>
#include <thread>
#include <vector>

namespace longctx {
namespace {

RendezvousConfig config(int nnodes, int node_rank, int port) {
  RendezvousConfig c;
  c.nnodes = nnodes;
  c.node_rank = node_rank;
  c.master_addr = "127.0.0.1";
  c.master_port = port;
  c.secret = "test-secret-0123456789";
  c.timeout_s = 20;
  c.hello_timeout_s = 0.5;
  return c;
}

RendezvousPayload payload_of(uint8_t seed) {
  RendezvousPayload p;
  for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<uint8_t>(seed + 7 * i);
  return p;
}

// A raw client that connects to the server's port and sends `bytes` (then keeps the
// connection open for `hold` so that a silent peer really is silent, not closed).
int raw_connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  return fd;
}

// The hello a well-behaved node would send, to be corrupted field by field.
std::vector<uint8_t> hello(int nnodes, int node, const std::string& secret, uint32_t version = 1) {
  std::vector<uint8_t> h(96, 0);
  std::memcpy(h.data(), "LCTXRDV1", 8);
  std::memcpy(h.data() + 8, &version, 4);
  const uint32_t n = static_cast<uint32_t>(nnodes), r = static_cast<uint32_t>(node);
  std::memcpy(h.data() + 12, &n, 4);
  std::memcpy(h.data() + 16, &r, 4);
  std::memcpy(h.data() + 24, secret.data(), secret.size());
  return h;
}

TEST(TcpRendezvous, EveryNodeReceivesNodeZerosPayload) {
  const int nnodes = 4;
  auto server = RendezvousServer::listen(config(nnodes, 0, 0));
  ASSERT_TRUE(server.is_ok()) << server.status().message();
  const int port = server->port();
  ASSERT_GT(port, 0);
  const RendezvousPayload payload = payload_of(3);
  auto served = std::async(std::launch::async, [&] { return server->serve(payload); });
  std::vector<std::future<Result<RendezvousPayload>>> joins;
  for (int r = 1; r < nnodes; ++r)
    joins.push_back(std::async(std::launch::async, [=] { return rendezvous_join(config(nnodes, r, port)); }));
  for (auto& j : joins) {
    auto got = j.get();
    ASSERT_TRUE(got.is_ok()) << got.status().message();
    EXPECT_EQ(*got, payload);
  }
  EXPECT_TRUE(served.get().is_ok());
  EXPECT_EQ(server->rejected(), 0);
}

TEST(TcpRendezvous, StrayAndSilentConnectionsAreRejectedWithoutStallingTheGroup) {
  const int nnodes = 3;
  auto server = RendezvousServer::listen(config(nnodes, 0, 0));
  ASSERT_TRUE(server.is_ok()) << server.status().message();
  const int port = server->port();
  const RendezvousPayload payload = payload_of(9);
  auto served = std::async(std::launch::async, [&] { return server->serve(payload); });

  const std::string secret = config(nnodes, 0, 0).secret;
  std::vector<int> strays;
  const auto send_raw = [&](const std::vector<uint8_t>& bytes) {
    const int fd = raw_connect(port);
    if (!bytes.empty()) {
      EXPECT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL), ssize_t(bytes.size()));
    }
    strays.push_back(fd);
  };
  send_raw({});                                                  // connects and says nothing
  const std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";  // some other protocol
  send_raw(std::vector<uint8_t>(http.begin(), http.end()));
  send_raw(hello(nnodes, 1, "wrong-secret"));
  send_raw(hello(nnodes, 1, secret, /*version=*/2));
  send_raw(hello(nnodes + 1, 1, secret));  // another group's size
  send_raw(hello(nnodes, 0, secret));      // claims node 0's place
  send_raw(hello(nnodes, 7, secret));      // out of range
  send_raw(std::vector<uint8_t>(100000, 0xAB));  // a flood: only the fixed hello is read

  // The real nodes join while the silent stray is still connected.
  auto a = std::async(std::launch::async, [=] { return rendezvous_join(config(nnodes, 1, port)); });
  auto b = std::async(std::launch::async, [=] { return rendezvous_join(config(nnodes, 2, port)); });
  auto ga = a.get(), gb = b.get();
  ASSERT_TRUE(ga.is_ok()) << ga.status().message();
  ASSERT_TRUE(gb.is_ok()) << gb.status().message();
  EXPECT_EQ(*ga, payload);
  EXPECT_EQ(*gb, payload);
  EXPECT_TRUE(served.get().is_ok());
  // Every stray that sent something wrong was turned away; the silent one may still be
  // pending when the group completes (it is simply closed with the server).
  EXPECT_GE(server->rejected(), 7);
  for (int fd : strays) ::close(fd);
}

TEST(TcpRendezvous, ANodeWithTheWrongSecretGetsAClearError) {
  auto server = RendezvousServer::listen(config(2, 0, 0));
  ASSERT_TRUE(server.is_ok());
  const int port = server->port();
  RendezvousConfig bad = config(2, 1, port);
  bad.secret = "not-the-secret";
  auto served = std::async(std::launch::async, [&] { return server->serve(payload_of(1)); });
  auto got = rendezvous_join(bad);
  ASSERT_FALSE(got.is_ok());
  EXPECT_NE(got.status().message().find("rejected"), std::string::npos) << got.status().message();
  // The group still forms with the right node.
  auto good = rendezvous_join(config(2, 1, port));
  ASSERT_TRUE(good.is_ok()) << good.status().message();
  EXPECT_TRUE(served.get().is_ok());
  EXPECT_EQ(server->rejected(), 1);
}

TEST(TcpRendezvous, NodeZeroTimesOutWithACountOfWhoJoined) {
  RendezvousConfig c = config(3, 0, 0);
  c.timeout_s = 0.3;
  auto server = RendezvousServer::listen(c);
  ASSERT_TRUE(server.is_ok());
  const int port = server->port();
  auto served = std::async(std::launch::async, [&] { return server->serve(payload_of(2)); });
  ASSERT_TRUE(rendezvous_join(config(3, 1, port)).is_ok());
  const Status s = served.get();
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("1 of 2 nodes joined"), std::string::npos) << s.message();
}

TEST(TcpRendezvous, AJoinerWithNoServerTimesOut) {
  // A port nobody listens on: take one, then close it.
  int port = 0;
  {
    auto s = RendezvousServer::listen(config(2, 0, 0));
    ASSERT_TRUE(s.is_ok());
    port = s->port();
  }
  RendezvousConfig c = config(2, 1, port);
  c.timeout_s = 0.2;
  auto got = rendezvous_join(c);
  ASSERT_FALSE(got.is_ok());
  EXPECT_NE(got.status().message().find("could not connect"), std::string::npos) << got.status().message();
}

TEST(TcpRendezvous, InvalidConfigurationsNameTheFlag) {
  RendezvousConfig c = config(2, 2, 1234);
  EXPECT_NE(validate(c).message().find("--node-rank"), std::string::npos);
  c = config(2, 1, 0);
  EXPECT_NE(validate(c).message().find("--master-port"), std::string::npos);
  c = config(2, 1, 1234);
  c.master_addr = "node-a.example";
  EXPECT_NE(validate(c).message().find("--master-addr"), std::string::npos);
  c = config(2, 1, 1234);
  c.secret = std::string(65, 'x');
  EXPECT_NE(validate(c).message().find("secret"), std::string::npos);
  c = config(0, 0, 1234);
  EXPECT_NE(validate(c).message().find("--nnodes"), std::string::npos);
  EXPECT_TRUE(validate(config(2, 1, 1234)).is_ok());
}

}  // namespace
}  // namespace longctx
