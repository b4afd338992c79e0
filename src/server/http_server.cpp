#include "server/http_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <csignal>

#include "core/logging.h"
#include "server/auth.h"
#include "server/openai_response.h"
#include "server/prometheus_metrics.h"
#include "server/routes.h"

#ifndef LONGCTX_VERSION
#define LONGCTX_VERSION "unknown"
#endif

namespace longctx::server {

HttpServer::HttpServer(ServerConfig cfg) : cfg_(std::move(cfg)), http_(std::make_unique<httplib::Server>()) {
  // A client that goes away must not kill the server: writes to its socket fail with
  // EPIPE instead (this httplib build sends without MSG_NOSIGNAL).
  std::signal(SIGPIPE, SIG_IGN);
  const size_t threads = static_cast<size_t>(cfg_.http_threads);
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_->set_payload_max_length(static_cast<size_t>(cfg_.limits.max_body_bytes));
  // Stream chunks are small: send each at once rather than wait on Nagle.
  http_->set_tcp_nodelay(true);
  // Remember the listening socket: bind() widens its backlog (see there).
  http_->set_socket_options([this](socket_t sock) {
    httplib::default_socket_options(sock);
    listen_fd_ = sock;
  });
  setup_routes();
}

HttpServer::~HttpServer() { stop(); }

Result<int> HttpServer::bind() {
  const int port = cfg_.port == 0 ? http_->bind_to_any_port(cfg_.host)
                                  : (http_->bind_to_port(cfg_.host, cfg_.port) ? cfg_.port : -1);
  if (port < 0)
    return invalid_argument("cannot listen on " + cfg_.host + ":" + std::to_string(cfg_.port) +
                            " (--host/--port: address in use or not this machine's?)");
  // This httplib build listens with a backlog of 5: a burst of concurrent clients
  // overflows it and connections stall or fail. listen() again widens the queue.
  if (listen_fd_ >= 0) ::listen(listen_fd_, SOMAXCONN);
  port_ = port;
  return port;
}

void HttpServer::start() {
  listener_ = std::thread([this] { http_->listen_after_bind(); });
  // Serving once this returns (stop() right after must find it running).
  while (!http_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void HttpServer::attach(std::shared_ptr<const ServedModel> model) {
  std::lock_guard<std::mutex> lock(mu_);
  model_ = std::move(model);
}

std::shared_ptr<const ServedModel> HttpServer::model() const {
  std::lock_guard<std::mutex> lock(mu_);
  return model_;
}

void HttpServer::drain() {
  using Clock = std::chrono::steady_clock;
  draining_ = true;
  const auto deadline = Clock::now() + std::chrono::duration<double>(cfg_.drain_timeout_s);
  while (in_flight_.load() > 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (in_flight_.load() > 0) {
    LCTX_LOG_WARN("drain: {} requests still running after {} s; aborting them", in_flight_.load(),
                  cfg_.drain_timeout_s);
    if (auto m = model()) m->loop().abort_all();
    // Their streams end with finish_reason "abort"; give the writes a moment.
    const auto grace = Clock::now() + std::chrono::seconds(5);
    while (in_flight_.load() > 0 && Clock::now() < grace)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void HttpServer::stop() {
  if (http_->is_running()) http_->stop();
  if (listener_.joinable()) listener_.join();
}

template <typename Req, typename Res>
std::shared_ptr<const ServedModel> HttpServer::admit(const Req& req, Res& res, Access access,
                                                     bool needs_model) const {
  if (header_bytes(req) > cfg_.limits.max_header_bytes) {
    write_error(res,
                ApiError{431,
                         "request headers are larger than " + std::to_string(cfg_.limits.max_header_bytes) +
                             " bytes (--max-header-bytes)",
                         "invalid_request_error", std::nullopt, "headers_too_large"});
    return nullptr;
  }
  const bool open = access == Access::kOpen || (access == Access::kMetrics && cfg_.metrics_open);
  if (!open && !has_valid_api_key(req, cfg_.api_key)) {
    write_error(res, unauthorized());
    return nullptr;
  }
  if (draining_.load() && access == Access::kKey) {
    write_error(res, unavailable("the server is shutting down; retry on another instance"));
    return nullptr;
  }
  auto m = model();
  if (!m && needs_model) {
    write_error(res, unavailable("the model is loading; retry shortly"));
    return nullptr;
  }
  return m ? m : std::shared_ptr<const ServedModel>();
}

void HttpServer::setup_routes() {
  using httplib::Request;
  using httplib::Response;
  httplib::Server& s = *http_;

  s.Get("/health", [this](const Request& req, Response& res) {
    if (!admit(req, res, Access::kOpen, true)) return;
    if (draining_.load()) return write_error(res, unavailable("the server is shutting down"));
    res.status = 200;
  });
  s.Get("/version", [this](const Request& req, Response& res) {
    admit(req, res, Access::kKey, false);
    if (res.status >= 400) return;
    res.set_content(dump_json({{"version", LONGCTX_VERSION}}), "application/json");
  });
  s.Get("/metrics", [this](const Request& req, Response& res) {
    auto m = admit(req, res, Access::kMetrics, true);
    if (!m) return;
    const EngineLoop& loop = m->loop();
    MetricsInfo info;
    info.model_name = m->name();
    info.num_kv_blocks = loop.num_kv_blocks();
    info.block_size = loop.config().block_size;
    info.active_requests = loop.num_active();
    res.set_content(render_prometheus(loop.metrics(), info), "text/plain; version=0.0.4; charset=utf-8");
  });
  s.Get("/v1/models", [this](const Request& req, Response& res) {
    if (auto m = admit(req, res, Access::kKey, true)) handle_models(*m, req, res);
  });
  s.Get(R"(/v1/models/(.+))", [this](const Request& req, Response& res) {
    if (auto m = admit(req, res, Access::kKey, true)) handle_models(*m, req, res);
  });
  auto generation = [this](ApiKind kind) {
    return [this, kind](const Request& req, Response& res) {
      auto m = admit(req, res, Access::kKey, true);
      if (!m) return;
      ++in_flight_;
      std::shared_ptr<void> token(nullptr, [this](void*) { --in_flight_; });
      handle_generation(kind, std::move(m), cfg_.limits, req, res, std::move(token));
    };
  };
  s.Post("/v1/completions", generation(ApiKind::kCompletion));
  s.Post("/v1/chat/completions", generation(ApiKind::kChat));
  s.Post("/tokenize", [this](const Request& req, Response& res) {
    if (auto m = admit(req, res, Access::kKey, true)) handle_tokenize(*m, cfg_.limits, req, res);
  });
  s.Post("/detokenize", [this](const Request& req, Response& res) {
    if (auto m = admit(req, res, Access::kKey, true)) handle_detokenize(*m, cfg_.limits, req, res);
  });

  // Statuses httplib sets itself (404 no route, 413 body too large, 400 unparsable
  // request, 414 URI too long) get the OpenAI error shape too.
  s.set_error_handler(httplib::Server::HandlerWithResponse([this](const Request& req, Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // a route wrote its error
    ApiError e;
    switch (res.status) {
      case 404: e = not_found_error("no route " + req.method + " " + req.path, "route_not_found"); break;
      case 413:
        e = payload_too_large("the request body is larger than " +
                              std::to_string(cfg_.limits.max_body_bytes) + " bytes (--max-body-bytes)");
        break;
      default:
        e = ApiError{res.status,
                     "the HTTP request was rejected (" + std::to_string(res.status) +
                         "): malformed, or a header line over 8192 bytes",
                     "invalid_request_error", std::nullopt, std::nullopt};
    }
    write_error(res, e);
    return httplib::Server::HandlerResponse::Handled;
  }));
  s.set_exception_handler([](const Request&, Response& res, std::exception_ptr ep) {
    std::string what = "unknown";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    LCTX_LOG_ERROR("request handler failed: {}", what);
    write_error(res, ApiError{500, "internal error: " + what, "internal_error", std::nullopt, std::nullopt});
  });
}

}  // namespace longctx::server
