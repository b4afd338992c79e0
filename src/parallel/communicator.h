// Communicator: the collectives of one process group, as the model layer calls them.
// Host ranks (threads of one process, HostCommunicator) and GPUs (NCCL, the CUDA
// issue) implement the same calls. Every member issues the same collectives in the
// same order with the same counts (STYLE.md §18); a mismatch is a bug and throws.
//
// Buffers are fp32 and counted in floats. Ranks are indices into the group (0 ..
// size()-1), not global ranks. Reductions add the members' contributions in group
// order 0, 1, …, so a result is bitwise reproducible and identical on every member.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace longctx {

// Thrown from a collective when another rank of the world failed and the run is being
// torn down; the failing rank's own error is the one reported.
class CommAborted : public std::runtime_error {
 public:
  CommAborted() : std::runtime_error("communicator aborted: another rank failed") {}
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int size() const = 0;
  virtual int rank() const = 0;  // this member's index in the group
  virtual const std::string& name() const = 0;

  // data[count] ← Σ over members of their data[count] (in place).
  virtual void all_reduce_sum(float* data, int64_t count) = 0;
  // recv[size · count]: member j's send[count] at recv + j · count.
  virtual void all_gather(const float* send, int64_t count, float* recv) = 0;
  // send[size · count]; recv[count] ← Σ_j (member j's send + rank() · count).
  virtual void reduce_scatter_sum(const float* send, int64_t count, float* recv) = 0;
  // send[size · count], recv[size · count]: recv + j · count ← member j's send + rank() · count.
  virtual void all_to_all(const float* send, int64_t count, float* recv) = 0;
  // data[count] on every member ← root's data.
  virtual void broadcast(float* data, int64_t count, int root) = 0;
  // Point to point. send returns once the data is copied out (buffered); recv blocks
  // until the matching message (FIFO per ordered pair) arrives; counts must match.
  virtual void send(const float* data, int64_t count, int peer) = 0;
  virtual void recv(float* data, int64_t count, int peer) = 0;
  // send to `to` and receive from `from` as one step — what a ring hop needs: NCCL's
  // point-to-point blocks a send until its recv is posted, so a ring of plain send-then-
  // recv would deadlock there; NCCL groups the pair. Host ranks: send, then recv.
  virtual void sendrecv(const float* send_data, int64_t send_count, int to, float* recv_data, int64_t recv_count,
                        int from) {
    send(send_data, send_count, to);
    recv(recv_data, recv_count, from);
  }
  virtual void barrier() = 0;
};

}  // namespace longctx
