// NcclCommunicator: the Communicator calls (parallel/communicator.h) over NCCL, for GPU
// ranks — one thread per GPU in one process for a node, one process per node across
// nodes (the NCCL unique id travels by parallel/tcp_rendezvous.h). The same calls as the
// host ranks, so the model layer does not know which it talks to.
//
// Differences from HostCommunicator, by the nature of GPUs:
//  - buffers are device pointers (fp32) and every call is stream-ordered on the
//    communicator's stream: it is enqueued, not finished, when the call returns. The
//    model enqueues its kernels on the same stream, so the order is what the code says;
//    barrier() and synchronize() wait for the stream.
//  - NCCL reduces in its own (ring/tree) order, so all_reduce_sum is not bitwise the
//    host's group-ordered sum; it is identical on every member, which is what keeps
//    ranks in lockstep. Layout tests compare logits with the fp32 tolerance, not bits.
//  - all_to_all is a grouped send/recv to every peer; send/recv pair through NCCL, so
//    a send is complete only when the matching recv has been posted (no host mailbox).
// NVLink multicast (NVLS) is never used: create() sets NCCL_NVLS_ENABLE=0 unless the
// environment already says 0, and refuses to run with it on (shared machines: see
// docs/cuda.md).
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <memory>
#include <string>

#include "core/status.h"
#include "parallel/communicator.h"
#include "parallel/parallel_layout.h"
#include "parallel/rank_communicators.h"

namespace longctx {

class NcclCommunicator final : public Communicator {
 public:
  // Every member of the group calls this (collectively) with the same id. The current
  // CUDA device must be the member's GPU. `stream` is borrowed; 0 = a stream of its own.
  static Result<std::unique_ptr<NcclCommunicator>> create(std::string name, int size, int rank,
                                                         const ncclUniqueId& id, cudaStream_t stream = nullptr);
  static Result<ncclUniqueId> unique_id();
  ~NcclCommunicator() override;

  // A sub-communicator (ncclCommSplit): every member of this communicator must call
  // split the same number of times in the same order; members passing the same color
  // form one group, ordered by key. Used to carve the tp/dcp/cp/kvp/pp groups out of the
  // world group.
  Result<std::unique_ptr<NcclCommunicator>> split(std::string name, int color, int key);

  int size() const override { return size_; }
  int rank() const override { return rank_; }
  const std::string& name() const override { return name_; }
  cudaStream_t stream() const { return stream_; }

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
  void synchronize();

 private:
  NcclCommunicator(std::string name, int size, int rank, ncclComm_t comm, cudaStream_t stream, bool owns_stream);
  void check(ncclResult_t r, const char* what) const;

  std::string name_;
  int size_ = 0, rank_ = 0;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  bool owns_stream_ = false;
  float* scratch_ = nullptr;  // one float on the device, for barrier()
};

// Every group of `rank` in `layout`, split out of `world` (whose members are the
// layout's ranks, world rank = layout rank). Collective over the world.
Result<RankCommunicators> nccl_rank_communicators(NcclCommunicator& world, const ParallelLayout& layout,
                                                  int rank);

}  // namespace longctx
