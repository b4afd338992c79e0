// ConnectionProbe: whether the client of a request is still there, for a handler that
// waits before writing anything (a non-streaming generation). A stream notices a gone
// client when a write fails; a whole response has nothing to write until the end, so
// without a probe an abandoned request would run to max_tokens holding its KV blocks.
//
// cpp-httplib 0.11.4 (Debian 12) hands a handler no socket (Request::is_connection_closed
// came in later releases), so the probe finds it: the one socket of this process whose
// local and peer addresses are the request's. That pair names one live TCP connection,
// and its descriptor cannot be closed or reused while the handler runs, because httplib
// closes a connection's socket on the connection's own thread, after the handler returns.
#pragma once

#include <string>

namespace longctx::server {

class ConnectionProbe {
 public:
  // The connection local_addr:local_port ← remote_addr:remote_port (httplib's
  // numeric-host strings); a probe that found nothing never reports the client gone.
  static ConnectionProbe find(const std::string& local_addr, int local_port, const std::string& remote_addr,
                              int remote_port);

  bool found() const { return fd_ >= 0; }
  // The peer closed (FIN: an HTTP client that half-closes is taken as gone, as it
  // cannot tell us otherwise) or reset the connection. Does not block or consume data: a
  // pipelined next request stays in the socket for httplib.
  bool client_gone() const;

 private:
  int fd_ = -1;
};

}  // namespace longctx::server
