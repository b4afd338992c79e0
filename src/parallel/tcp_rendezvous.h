// TcpRendezvous: how the nodes of a multi-node launch (--nnodes --node-rank
// --master-addr --master-port) agree on one opaque 128-byte value — the NCCL unique id
// that node 0 creates — before NCCL takes over (CUDA issue, DESIGN.md §3).
//
// The listening port is reachable by whatever can reach the master address, so the
// protocol is built to be boring to attack: every message has one fixed size and
// layout (no lengths read off the wire, nothing deserialised), a peer is rejected at
// the first wrong byte (magic, version, node count, node rank out of range or already
// taken, secret), each connection gets a bounded time to say hello, and the server
// multiplexes all connections with poll(), so a stray or silent client costs a socket,
// never a stalled group. The secret (LONGCTX_RENDEZVOUS_SECRET) is compared in
// constant time; it travels in clear text, so the master address should be a private
// interface (the default bind is the master address itself, not 0.0.0.0).
//
// Wire format (little-endian, what every x86/ARM host is):
//   hello  (client → server, 96 bytes): "LCTXRDV1" | u32 version | u32 nnodes |
//          u32 node_rank | u32 0 | 64 bytes secret, zero-padded | 8 bytes zero
//   answer (server → client, 144 bytes): "LCTXRDV1" | u32 version | u32 0 |
//          128 bytes payload
// A rejected client gets no answer: the server closes the connection.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace longctx {

using RendezvousPayload = std::array<uint8_t, 128>;

struct RendezvousConfig {
  int nnodes = 1;
  int node_rank = 0;
  std::string master_addr = "127.0.0.1";  // an IPv4 address
  int master_port = 29500;
  std::string secret;              // same on every node; at most 64 bytes
  double timeout_s = 300.0;        // the whole rendezvous
  double hello_timeout_s = 5.0;    // server: a connected peer must send its hello within this
};

// Checks the fields (node rank in range, port, address parses, secret length).
Status validate(const RendezvousConfig& cfg);

// Node 0's side: listens on master_addr:master_port (port 0 = any free port, see port()),
// then serve() hands `payload` to each of the other nnodes − 1 nodes and returns once
// all of them have it. Rejected peers are logged (warn) with the reason.
class RendezvousServer {
 public:
  static Result<RendezvousServer> listen(const RendezvousConfig& cfg);
  RendezvousServer(RendezvousServer&& o) noexcept;
  RendezvousServer& operator=(RendezvousServer&& o) noexcept;
  ~RendezvousServer();

  int port() const { return port_; }
  Status serve(const RendezvousPayload& payload);
  // Peers turned away so far (tests and logs).
  int rejected() const { return rejected_; }

 private:
  RendezvousServer(RendezvousConfig cfg, int fd, int port) : cfg_(std::move(cfg)), fd_(fd), port_(port) {}
  RendezvousConfig cfg_;
  int fd_ = -1;
  int port_ = 0;
  int rejected_ = 0;
};

// Node r > 0's side: connects (retrying while the server is not up yet, until the
// timeout), sends its hello and returns node 0's payload.
Result<RendezvousPayload> rendezvous_join(const RendezvousConfig& cfg);

}  // namespace longctx
