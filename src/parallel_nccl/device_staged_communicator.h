// DeviceStagedCommunicator: the Communicator calls over DEVICE fp32 buffers for GPU ranks
// that cannot each have their own GPU — several ranks sharing one GPU (the layout tests on
// a one-GPU machine), which NCCL refuses. Each call waits for the rank's stream, copies the
// device buffer to host memory, runs the collective of a host communicator (threads of one
// process, parallel/host_communicator.h) and copies the result back; it returns with the
// result on the device, so the work the rank enqueues next on its stream sees it.
//
// The same contract as NcclCommunicator on its stream: buffers are device pointers, the
// calls are ordered on `stream` (here by finishing them on the host). Reductions keep the
// host communicator's group order, so results are bitwise identical on every member.
// Slow by design (two PCIe copies and a host rendezvous per call): for tests and for
// machines with fewer GPUs than ranks, never for speed.
#pragma once

#include <cuda_runtime_api.h>

#include <memory>
#include <string>
#include <vector>

#include "parallel/communicator.h"
#include "parallel/parallel_layout.h"
#include "parallel/rank_communicators.h"

namespace longctx {

class HostWorld;

class DeviceStagedCommunicator final : public Communicator {
 public:
  // `host` is the rank's host communicator of the group; `stream` (borrowed) the stream the
  // rank's kernels run on.
  DeviceStagedCommunicator(std::unique_ptr<Communicator> host, cudaStream_t stream);

  int size() const override { return host_->size(); }
  int rank() const override { return host_->rank(); }
  const std::string& name() const override { return host_->name(); }

  void all_reduce_sum(float* data, int64_t count) override;
  void all_gather(const float* send, int64_t count, float* recv) override;
  void reduce_scatter_sum(const float* send, int64_t count, float* recv) override;
  void all_to_all(const float* send, int64_t count, float* recv) override;
  void broadcast(float* data, int64_t count, int root) override;
  void send(const float* data, int64_t count, int peer) override;
  void recv(float* data, int64_t count, int peer) override;
  void barrier() override;

 private:
  // Waits for the stream, then copies count floats of device `src` into the host scratch `h`.
  void download(const float* src, int64_t count, std::vector<float>& h);
  void upload(const std::vector<float>& h, int64_t count, float* dst);

  std::unique_ptr<Communicator> host_;
  cudaStream_t stream_ = nullptr;
  std::vector<float> in_, out_;  // host staging, grown on demand
};

// Every group of `rank` in `layout`, device-staged over the shared host world, ordered on
// `stream` (the rank's model stream).
RankCommunicators device_staged_rank_communicators(HostWorld& world, const ParallelLayout& layout, int rank,
                                                   cudaStream_t stream);

}  // namespace longctx
