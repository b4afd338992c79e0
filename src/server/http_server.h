// HttpServer: the OpenAI-compatible HTTP front of one served model (cpp-httplib; see
// README "Server" for why). Lifecycle: bind() → start() (serves /health as 503
// "loading") → attach(model) (ready) → drain() on SIGTERM (503 for new requests,
// in-flight ones finish or are aborted at the deadline) → stop().
//
// Threading: httplib's pool of --http-threads connection threads runs the handlers;
// they share the ServedModel and talk to its engine only through its EngineLoop.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>

#include "core/status.h"
#include "server/served_model.h"
#include "server/server_config.h"

namespace httplib {
class Server;
}

namespace longctx::server {

class HttpServer {
 public:
  explicit HttpServer(ServerConfig cfg);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds --host:--port (port 0: a free one); returns the port bound.
  Result<int> bind();
  // Serves on a background thread (after bind()).
  void start();
  // The model is ready: requests are served from now on.
  void attach(std::shared_ptr<const ServedModel> model);
  // Stops admitting (503), waits up to drain_timeout_s for in-flight requests, aborts
  // what is left and waits for those responses to end. Then stop() may be called.
  void drain();
  void stop();

  int port() const { return port_; }
  bool draining() const { return draining_.load(); }
  int64_t in_flight() const { return in_flight_.load(); }

 private:
  enum class Access { kOpen, kMetrics, kKey };  // /health; /metrics (open with --metrics-open); the rest
  void setup_routes();
  std::shared_ptr<const ServedModel> model() const;
  // Runs the common checks (headers, key, loading, draining); returns the model or
  // null after writing the error.
  template <typename Req, typename Res>
  std::shared_ptr<const ServedModel> admit(const Req& req, Res& res, Access access, bool needs_model) const;

  ServerConfig cfg_;
  std::unique_ptr<httplib::Server> http_;
  std::thread listener_;
  int port_ = -1;
  int listen_fd_ = -1;
  mutable std::mutex mu_;
  std::shared_ptr<const ServedModel> model_;
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> in_flight_{0};  // generation responses not fully written
};

}  // namespace longctx::server
