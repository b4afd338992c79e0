// StreamJoinedCommunicator: orders a stream-ordered communicator (NcclCommunicator, whose
// calls are enqueued on its own stream) with the stream a GPU rank's kernels run on, so
// the model can treat every collective as one more operation on ITS stream. Each call
// makes the communicator's stream wait for the rank's stream (an event), enqueues the
// collective, and makes the rank's stream wait for the communicator's. Nothing blocks the
// host. Needs only the CUDA runtime; the NCCL-specific part (which stream a communicator
// has) is the caller's.
#pragma once

#include <cuda_runtime_api.h>

#include <memory>
#include <string>

#include "parallel/communicator.h"

namespace longctx {

class StreamJoinedCommunicator final : public Communicator {
 public:
  // `inner` enqueues its work on `inner_stream`; `stream` is the rank's (both borrowed).
  StreamJoinedCommunicator(std::unique_ptr<Communicator> inner, cudaStream_t inner_stream,
                           cudaStream_t stream);
  ~StreamJoinedCommunicator() override;
  StreamJoinedCommunicator(const StreamJoinedCommunicator&) = delete;
  StreamJoinedCommunicator& operator=(const StreamJoinedCommunicator&) = delete;

  int size() const override { return inner_->size(); }
  int rank() const override { return inner_->rank(); }
  const std::string& name() const override { return inner_->name(); }

  void all_reduce_sum(float* data, int64_t count) override;
  void all_gather(const float* send, int64_t count, float* recv) override;
  void reduce_scatter_sum(const float* send, int64_t count, float* recv) override;
  void all_to_all(const float* send, int64_t count, float* recv) override;
  void broadcast(float* data, int64_t count, int root) override;
  void send(const float* data, int64_t count, int peer) override;
  void recv(float* data, int64_t count, int peer) override;
  void sendrecv(const float* send_data, int64_t send_count, int to, float* recv_data, int64_t recv_count,
                int from) override;
  void barrier() override;

 private:
  // Runs f (one inner call) between the two joins.
  template <typename F>
  void joined(F&& f);

  std::unique_ptr<Communicator> inner_;
  cudaStream_t inner_stream_ = nullptr, stream_ = nullptr;
  cudaEvent_t before_ = nullptr, after_ = nullptr;
};

}  // namespace longctx
