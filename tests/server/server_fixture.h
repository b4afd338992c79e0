// Test helpers: a server in this process on an ephemeral loopback port, clients for
// it (httplib::Client, and raw sockets for what a well-behaved client would not do),
// the transformers goldens of the fixture models, and a tiny model with a real
// tokenizer made once per test process.
#pragma once

#include <chrono>

#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "server/http_server.h"
#include "server/served_model.h"

namespace longctx::server::testing {

using nlohmann::json;

const std::string kHf = std::string(LONGCTX_TEST_DATA_DIR) + "/hf/";

struct Golden {
  std::vector<int32_t> ids, greedy;
};
std::vector<Golden> goldens(const std::string& model);

// The qwen3 tiny preset with the real Qwen3 tokenizer and chat template.
const std::filesystem::path& tiny_model_dir();

struct TestServerOptions {
  std::filesystem::path model_dir;
  bool skip_tokenizer_init = false;
  ServerConfig server;  // host/port are set by the fixture
  EngineConfig engine;
};

// Loads the model and serves it on 127.0.0.1:<free port>.
class TestServer {
 public:
  explicit TestServer(TestServerOptions opts);
  ~TestServer();

  int port() const { return port_; }
  HttpServer& http() { return *http_; }
  const ServedModel& model() const { return *model_; }
  httplib::Client client(int read_timeout_s = 60) const;

  // POST a JSON body; the response (status, body parsed when JSON).
  struct Reply {
    int status = 0;
    json body;
    std::string raw;
  };
  Reply post(const std::string& path, const json& body, const httplib::Headers& headers = {}) const;
  Reply get(const std::string& path, const httplib::Headers& headers = {}) const;
  // A metric's value from /metrics (first sample of that name), or -1.
  double metric(const std::string& name) const;
  // Polls /metrics until KV usage is back to `idle` and no request is active, for at
  // most `limit`; returns the last KV usage read (the disconnect tests' "idle within 1 s").
  double wait_for_idle_kv(double idle, std::chrono::milliseconds limit) const;

 private:
  std::shared_ptr<const ServedModel> model_;
  std::unique_ptr<HttpServer> http_;
  int port_ = 0;
};

// The data events of an SSE body ("data: ..." lines), [DONE] included as a string.
std::vector<std::string> sse_data(const std::string& body);

// Raw HTTP over a socket: sends `request` exactly; returns the fd (caller closes).
int raw_connect(int port);
bool raw_send(int fd, const std::string& data);
// Reads until `needle` shows up or the peer closes / timeout; returns what was read.
std::string raw_read_until(int fd, const std::string& needle, int timeout_ms = 10000);
std::string http_post_text(const std::string& path, const std::string& body,
                           const std::string& extra_headers = "");

}  // namespace longctx::server::testing
