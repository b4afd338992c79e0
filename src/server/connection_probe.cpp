#include "server/connection_probe.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <charconv>
#include <filesystem>

namespace longctx::server {
namespace {

// An address as httplib writes Request::remote_addr/local_addr: getnameinfo's numeric host.
bool same_endpoint(const sockaddr_storage& sa, socklen_t len, const std::string& addr, int port) {
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&sa), len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    return false;
  return std::to_string(port) == serv && addr == host;
}

}  // namespace

ConnectionProbe ConnectionProbe::find(const std::string& local_addr, int local_port,
                                      const std::string& remote_addr, int remote_port) {
  ConnectionProbe p;
  if (remote_port < 0) return p;
  std::error_code ec;
  // Linux lists a process's open descriptors here; elsewhere the probe finds nothing.
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    int fd = -1;
    if (std::from_chars(name.data(), name.data() + name.size(), fd).ec != std::errc()) continue;
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_storage peer{}, local{};
    socklen_t peer_len = sizeof peer, local_len = sizeof local;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) continue;
    if (!same_endpoint(peer, peer_len, remote_addr, remote_port)) continue;
    // httplib fills the local end too; an unknown one (-1) leaves the peer to decide.
    if (local_port >= 0 && (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
                            !same_endpoint(local, local_len, local_addr, local_port)))
      continue;
    p.fd_ = fd;
    break;
  }
  return p;
}

bool ConnectionProbe::client_gone() const {
  if (fd_ < 0) return false;
  pollfd pfd{fd_, static_cast<short>(POLLIN | POLLRDHUP), 0};
  if (::poll(&pfd, 1, 0) <= 0) return false;
  if (pfd.revents & (POLLERR | POLLHUP | POLLRDHUP | POLLNVAL)) return true;
  if (pfd.revents & POLLIN) {
    char c;
    return ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;  // 0: end of stream
  }
  return false;
}

}  // namespace longctx::server
