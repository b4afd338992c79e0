#include "parallel/tcp_rendezvous.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "core/logging.h"

namespace longctx {
namespace {

constexpr char kMagic[8] = {'L', 'C', 'T', 'X', 'R', 'D', 'V', '1'};
constexpr uint32_t kVersion = 1;
constexpr size_t kSecretBytes = 64;
constexpr size_t kHelloBytes = 96;
constexpr size_t kAnswerBytes = 144;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
int ms_left(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1000));
}
Clock::time_point after(double s) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

void put_u32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
uint32_t get_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

std::array<uint8_t, kHelloBytes> make_hello(const RendezvousConfig& cfg) {
  std::array<uint8_t, kHelloBytes> h{};
  std::memcpy(h.data(), kMagic, 8);
  put_u32(h.data() + 8, kVersion);
  put_u32(h.data() + 12, static_cast<uint32_t>(cfg.nnodes));
  put_u32(h.data() + 16, static_cast<uint32_t>(cfg.node_rank));
  std::memcpy(h.data() + 24, cfg.secret.data(), cfg.secret.size());
  return h;
}

// Constant time in the secret's bytes: a timing probe learns nothing about a prefix.
bool same_secret(const uint8_t* a, const uint8_t* b) {
  uint8_t diff = 0;
  for (size_t i = 0; i < kSecretBytes; ++i) diff |= static_cast<uint8_t>(a[i] ^ b[i]);
  return diff == 0;
}

struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd = o.fd;
      o.fd = -1;
    }
    return *this;
  }
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  int release() {
    const int f = fd;
    fd = -1;
    return f;
  }
};

Status errno_error(const std::string& what) { return internal_error(what + ": " + std::strerror(errno)); }

Result<sockaddr_in> parse_address(const std::string& addr, int port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, addr.c_str(), &sa.sin_addr) != 1)
    return invalid_argument("--master-addr '" + addr + "' is not an IPv4 address");
  return sa;
}

std::string peer_name(const sockaddr_in& sa) {
  char buf[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &sa.sin_addr, buf, sizeof buf);
  return std::string(buf) + ":" + std::to_string(ntohs(sa.sin_port));
}

// Writes all of buf before the deadline (the socket is non-blocking).
bool write_all(int fd, const uint8_t* buf, size_t n, Clock::time_point deadline) {
  size_t done = 0;
  while (done < n) {
    const ssize_t w = ::send(fd, buf + done, n - done, MSG_NOSIGNAL);
    if (w > 0) {
      done += static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
    const int left = ms_left(deadline);
    if (left == 0) return false;
    pollfd p{fd, POLLOUT, 0};
    ::poll(&p, 1, left);
  }
  return true;
}

bool set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL, 0);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

}  // namespace

Status validate(const RendezvousConfig& cfg) {
  if (cfg.nnodes < 1) return invalid_argument("--nnodes must be at least 1, got " + std::to_string(cfg.nnodes));
  if (cfg.node_rank < 0 || cfg.node_rank >= cfg.nnodes)
    return invalid_argument("--node-rank " + std::to_string(cfg.node_rank) + " must lie in [0, --nnodes " +
                            std::to_string(cfg.nnodes) + ")");
  if (cfg.master_port < 0 || cfg.master_port > 65535)
    return invalid_argument("--master-port " + std::to_string(cfg.master_port) + " is not a TCP port");
  if (cfg.master_port == 0 && cfg.node_rank != 0)
    return invalid_argument("--master-port 0 (any port) is only for node 0's listener; other nodes need the port");
  if (cfg.secret.size() > kSecretBytes)
    return invalid_argument("the rendezvous secret is " + std::to_string(cfg.secret.size()) +
                            " bytes; at most " + std::to_string(kSecretBytes));
  if (!(cfg.timeout_s > 0) || !(cfg.hello_timeout_s > 0))
    return invalid_argument("rendezvous timeouts must be positive");
  return status_of(parse_address(cfg.master_addr, cfg.master_port));
}

RendezvousServer::RendezvousServer(RendezvousServer&& o) noexcept
    : cfg_(std::move(o.cfg_)), fd_(o.fd_), port_(o.port_), rejected_(o.rejected_) {
  o.fd_ = -1;
}

RendezvousServer& RendezvousServer::operator=(RendezvousServer&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    cfg_ = std::move(o.cfg_);
    fd_ = o.fd_;
    port_ = o.port_;
    rejected_ = o.rejected_;
    o.fd_ = -1;
  }
  return *this;
}

RendezvousServer::~RendezvousServer() {
  if (fd_ >= 0) ::close(fd_);
}

Result<RendezvousServer> RendezvousServer::listen(const RendezvousConfig& cfg) {
  LONGCTX_RETURN_IF_ERROR(validate(cfg));
  if (cfg.node_rank != 0) return invalid_argument("only node 0 listens for the rendezvous");
  LONGCTX_ASSIGN_OR_RETURN(sockaddr_in sa, parse_address(cfg.master_addr, cfg.master_port));
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.fd < 0) return errno_error("rendezvous socket");
  const int one = 1;
  ::setsockopt(fd.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd.fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0)
    return errno_error("rendezvous bind " + cfg.master_addr + ":" + std::to_string(cfg.master_port));
  if (::listen(fd.fd, 64) != 0) return errno_error("rendezvous listen");
  if (!set_nonblocking(fd.fd)) return errno_error("rendezvous listen socket");
  sockaddr_in bound{};
  socklen_t len = sizeof bound;
  ::getsockname(fd.fd, reinterpret_cast<sockaddr*>(&bound), &len);
  return RendezvousServer(cfg, fd.release(), ntohs(bound.sin_port));
}

Status RendezvousServer::serve(const RendezvousPayload& payload) {
  if (fd_ < 0) return internal_error("rendezvous server is not listening");
  struct Pending {
    Fd fd;
    std::string peer;
    Clock::time_point deadline;
    std::array<uint8_t, kHelloBytes> buf{};
    size_t have = 0;
  };
  std::vector<Pending> pending;
  std::set<uint32_t> joined;
  const auto expected = make_hello(cfg_);  // node rank field differs; compared field by field below
  std::array<uint8_t, kAnswerBytes> answer{};
  std::memcpy(answer.data(), kMagic, 8);
  put_u32(answer.data() + 8, kVersion);
  std::memcpy(answer.data() + 16, payload.data(), payload.size());

  const auto reject = [&](Pending& p, const std::string& why) {
    ++rejected_;
    LCTX_LOG_WARN("rendezvous: rejected {}: {}", p.peer, why);
    p.fd.reset();
  };
  const Clock::time_point start = Clock::now(), deadline = after(cfg_.timeout_s);
  while (static_cast<int>(joined.size()) < cfg_.nnodes - 1) {
    if (Clock::now() >= deadline)
      return internal_error("rendezvous timed out after " + std::to_string(seconds_since(start)) + " s: " +
                            std::to_string(joined.size()) + " of " + std::to_string(cfg_.nnodes - 1) +
                            " nodes joined");
    std::vector<pollfd> fds{{fd_, POLLIN, 0}};
    for (const Pending& p : pending) fds.push_back({p.fd.fd, POLLIN, 0});
    const int r = ::poll(fds.data(), fds.size(), std::min(ms_left(deadline), 100));
    if (r < 0 && errno != EINTR) return errno_error("rendezvous poll");

    if (fds[0].revents & POLLIN) {
      for (;;) {  // accept everything queued
        sockaddr_in sa{};
        socklen_t len = sizeof sa;
        const int c = ::accept4(fd_, reinterpret_cast<sockaddr*>(&sa), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) break;
        Pending p;
        p.fd = Fd(c);
        p.peer = peer_name(sa);
        p.deadline = after(cfg_.hello_timeout_s);
        pending.push_back(std::move(p));
      }
    }
    for (size_t i = 0; i < pending.size(); ++i) {
      Pending& p = pending[i];
      if (p.fd.fd < 0) continue;
      // Read what is there, never more than the fixed hello.
      while (p.have < kHelloBytes) {
        const ssize_t n = ::recv(p.fd.fd, p.buf.data() + p.have, kHelloBytes - p.have, 0);
        if (n > 0) {
          p.have += static_cast<size_t>(n);
          continue;
        }
        if (n == 0) {
          reject(p, "closed after " + std::to_string(p.have) + " of " + std::to_string(kHelloBytes) +
                        " hello bytes");
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          reject(p, std::string("read failed: ") + std::strerror(errno));
        }
        break;
      }
      if (p.fd.fd < 0) continue;
      if (p.have < kHelloBytes) {
        // Wrong magic is known from the first bytes: drop such a peer at once.
        if (std::memcmp(p.buf.data(), kMagic, std::min<size_t>(p.have, 8)) != 0)
          reject(p, "not a longctx rendezvous hello (bad magic)");
        else if (Clock::now() >= p.deadline)
          reject(p, "no complete hello within " + std::to_string(cfg_.hello_timeout_s) + " s");
        continue;
      }
      const uint8_t* h = p.buf.data();
      const uint32_t version = get_u32(h + 8), nnodes = get_u32(h + 12), node = get_u32(h + 16);
      if (std::memcmp(h, kMagic, 8) != 0) {
        reject(p, "not a longctx rendezvous hello (bad magic)");
      } else if (version != kVersion) {
        reject(p, "protocol version " + std::to_string(version) + ", expected " + std::to_string(kVersion));
      } else if (!same_secret(h + 24, expected.data() + 24)) {
        reject(p, "wrong secret");
      } else if (nnodes != static_cast<uint32_t>(cfg_.nnodes)) {
        reject(p, "says --nnodes " + std::to_string(nnodes) + ", this group has " + std::to_string(cfg_.nnodes));
      } else if (node == 0 || node >= nnodes) {
        reject(p, "node rank " + std::to_string(node) + " is not in [1, " + std::to_string(nnodes) + ")");
      } else if (joined.count(node) != 0) {
        reject(p, "node rank " + std::to_string(node) + " has already joined");
      } else if (!write_all(p.fd.fd, answer.data(), answer.size(), after(cfg_.hello_timeout_s))) {
        reject(p, "could not send the answer");
      } else {
        joined.insert(node);
        LCTX_LOG_INFO("rendezvous: node {} joined from {}", node, p.peer);
        p.fd.reset();
      }
    }
    std::erase_if(pending, [](const Pending& p) { return p.fd.fd < 0; });
  }
  return Status::ok();
}

Result<RendezvousPayload> rendezvous_join(const RendezvousConfig& cfg) {
  LONGCTX_RETURN_IF_ERROR(validate(cfg));
  if (cfg.node_rank == 0) return invalid_argument("node 0 serves the rendezvous; it does not join it");
  LONGCTX_ASSIGN_OR_RETURN(sockaddr_in sa, parse_address(cfg.master_addr, cfg.master_port));
  const std::string where = cfg.master_addr + ":" + std::to_string(cfg.master_port);
  const Clock::time_point deadline = after(cfg.timeout_s);
  Fd fd;
  // Node 0 may not be listening yet: retry the connection until the deadline.
  for (;;) {
    fd = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.fd < 0) return errno_error("rendezvous socket");
    if (::connect(fd.fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0) break;
    if (Clock::now() >= deadline)
      return internal_error("rendezvous: could not connect to node 0 at " + where + " within " +
                            std::to_string(cfg.timeout_s) + " s: " + std::strerror(errno));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!set_nonblocking(fd.fd)) return errno_error("rendezvous socket");
  const auto hello = make_hello(cfg);
  if (!write_all(fd.fd, hello.data(), hello.size(), deadline))
    return internal_error("rendezvous: could not send the hello to " + where);
  std::array<uint8_t, kAnswerBytes> answer{};
  size_t have = 0;
  while (have < kAnswerBytes) {
    const ssize_t n = ::recv(fd.fd, answer.data() + have, kAnswerBytes - have, 0);
    if (n > 0) {
      have += static_cast<size_t>(n);
      continue;
    }
    if (n == 0)
      return invalid_argument("rendezvous: node 0 at " + where +
                              " closed the connection: it rejected this node (wrong secret, --nnodes, or a "
                              "node rank already taken; node 0's log says which)");
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return errno_error("rendezvous read");
    const int left = ms_left(deadline);
    if (left == 0) return internal_error("rendezvous: no answer from node 0 at " + where + " before the timeout");
    pollfd p{fd.fd, POLLIN, 0};
    ::poll(&p, 1, left);
  }
  if (std::memcmp(answer.data(), kMagic, 8) != 0 || get_u32(answer.data() + 8) != kVersion)
    return data_loss("rendezvous: the answer from " + where + " is not a longctx rendezvous answer");
  RendezvousPayload payload;
  std::memcpy(payload.data(), answer.data() + 16, payload.size());
  return payload;
}

}  // namespace longctx
