#include "server_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <thread>

#include "model/presets.h"
#include "model/safetensors.h"

namespace longctx::server::testing {

std::vector<Golden> goldens(const std::string& model) {
  auto ck = Checkpoint::open(kHf + model + "/golden.safetensors").value();
  std::vector<Golden> out;
  for (int i = 0; ck.has("prompt_" + std::to_string(i) + "_ids"); ++i) {
    const std::string p = "prompt_" + std::to_string(i) + "_";
    Tensor ids = ck.get(p + "ids").value().to(DType::kI32), g = ck.get(p + "greedy").value().to(DType::kI32);
    out.push_back({std::vector<int32_t>(ids.data<int32_t>(), ids.data<int32_t>() + ids.numel()),
                   std::vector<int32_t>(g.data<int32_t>(), g.data<int32_t>() + g.numel())});
  }
  return out;
}

const std::filesystem::path& tiny_model_dir() {
  static const std::filesystem::path dir = [] {
    std::filesystem::path d =
        std::filesystem::temp_directory_path() / ("longctx_server_tiny_" + std::to_string(::getpid()));
    std::filesystem::remove_all(d);
    MakeModelOptions o;
    o.out_dir = d;
    o.tokenizers_dir = LONGCTX_TOKENIZERS_DIR;
    o.dtype = "float32";
    Status st = make_model(find_model_preset("qwen3", "tiny").value(), o);
    if (!st.is_ok()) throw StatusError(st);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(
          std::filesystem::temp_directory_path() / ("longctx_server_tiny_" + std::to_string(::getpid())), ec);
    });
    return d;
  }();
  return dir;
}

TestServer::TestServer(TestServerOptions opts) {
  ServedModelOptions m;
  m.model_dir = opts.model_dir;
  m.skip_tokenizer_init = opts.skip_tokenizer_init;
  m.engine = opts.engine;
  if (m.engine.num_kv_blocks == 0) m.engine.num_kv_blocks = 1024;
  m.served_model_name = opts.server.served_model_name;
  model_ = ServedModel::load(m).value();
  opts.server.host = "127.0.0.1";
  opts.server.port = 0;
  http_ = std::make_unique<HttpServer>(opts.server);
  port_ = http_->bind().value();
  http_->start();
  http_->attach(model_);
}

TestServer::~TestServer() {
  http_->stop();
  http_.reset();
}

httplib::Client TestServer::client(int read_timeout_s) const {
  httplib::Client c("127.0.0.1", port_);
  c.set_read_timeout(read_timeout_s, 0);
  return c;
}

namespace {
TestServer::Reply reply_of(const httplib::Result& r) {
  TestServer::Reply out;
  if (!r) {
    out.status = -1;
    out.raw = httplib::to_string(r.error());
    return out;
  }
  out.status = r->status;
  out.raw = r->body;
  out.body = json::parse(r->body, nullptr, false);
  return out;
}
}  // namespace

TestServer::Reply TestServer::post(const std::string& path, const json& body,
                                   const httplib::Headers& headers) const {
  auto c = client();
  return reply_of(c.Post(path, headers, body.dump(), "application/json"));
}

TestServer::Reply TestServer::get(const std::string& path, const httplib::Headers& headers) const {
  auto c = client();
  return reply_of(c.Get(path, headers));
}

double TestServer::metric(const std::string& name) const {
  auto r = get("/metrics");
  std::istringstream in(r.raw);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + "{", 0) != 0) continue;
    return std::stod(line.substr(line.rfind(' ') + 1));
  }
  return -1;
}

double TestServer::wait_for_idle_kv(double idle, std::chrono::milliseconds limit) const {
  const auto t0 = std::chrono::steady_clock::now();
  double usage = -1;
  while (std::chrono::steady_clock::now() - t0 < limit) {
    usage = metric("vllm:kv_cache_usage_perc");
    if (usage == idle && metric("longctx:server_active_requests") == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return usage;
}

std::vector<std::string> sse_data(const std::string& body) {
  std::vector<std::string> out;
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("data: ", 0) == 0) out.push_back(line.substr(6));
  return out;
}

int raw_connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool raw_send(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

std::string raw_read_until(int fd, const std::string& needle, int timeout_ms) {
  std::string got;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buf[4096];
  while (got.find(needle) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

std::string http_post_text(const std::string& path, const std::string& body,
                           const std::string& extra_headers) {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
         extra_headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace longctx::server::testing
