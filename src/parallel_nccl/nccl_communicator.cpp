#include "parallel_nccl/nccl_communicator.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace longctx {
namespace {

// NVLink multicast can take a shared host's GPUs out of service (docs/cuda.md): it is
// off for every communicator this process makes, whatever the caller's environment.
Status ensure_nvls_off() {
  const char* v = std::getenv("NCCL_NVLS_ENABLE");
  if (v == nullptr) {
    ::setenv("NCCL_NVLS_ENABLE", "0", 1);
    return Status::ok();
  }
  if (std::strcmp(v, "0") != 0)
    return invalid_argument(std::string("NCCL_NVLS_ENABLE=") + v +
                            ": longctx runs NCCL with NVLink multicast off; unset it or set it to 0");
  return Status::ok();
}

Status nccl_status(ncclResult_t r, const std::string& what) {
  if (r == ncclSuccess || r == ncclInProgress) return Status::ok();
  const char* last = ncclGetLastError(nullptr);
  return internal_error(what + ": " + ncclGetErrorString(r) + (last && *last ? std::string(" (") + last + ")" : ""));
}

}  // namespace

NcclCommunicator::NcclCommunicator(std::string name, int size, int rank, ncclComm_t comm, cudaStream_t stream,
                                   bool owns_stream)
    : name_(std::move(name)), size_(size), rank_(rank), comm_(comm), stream_(stream), owns_stream_(owns_stream) {
  if (cudaMalloc(&scratch_, sizeof(float)) != cudaSuccess) scratch_ = nullptr;
}

NcclCommunicator::~NcclCommunicator() {
  if (comm_) ncclCommDestroy(comm_);
  if (scratch_) cudaFree(scratch_);
  if (owns_stream_ && stream_) cudaStreamDestroy(stream_);
}

Result<ncclUniqueId> NcclCommunicator::unique_id() {
  LONGCTX_RETURN_IF_ERROR(ensure_nvls_off());
  ncclUniqueId id;
  LONGCTX_RETURN_IF_ERROR(nccl_status(ncclGetUniqueId(&id), "ncclGetUniqueId"));
  return id;
}

Result<std::unique_ptr<NcclCommunicator>> NcclCommunicator::create(std::string name, int size, int rank,
                                                                  const ncclUniqueId& id, cudaStream_t stream) {
  LONGCTX_RETURN_IF_ERROR(ensure_nvls_off());
  if (size < 1 || rank < 0 || rank >= size)
    return invalid_argument("NCCL group " + name + ": rank " + std::to_string(rank) + " outside [0, " +
                            std::to_string(size) + ")");
  bool owns = false;
  if (stream == nullptr) {
    if (cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) != cudaSuccess)
      return internal_error("NCCL group " + name + ": cudaStreamCreate failed");
    owns = true;
  }
  ncclComm_t comm = nullptr;
  const Status s = nccl_status(ncclCommInitRank(&comm, size, id, rank), "ncclCommInitRank(" + name + ")");
  if (!s.is_ok()) {
    if (owns) cudaStreamDestroy(stream);
    return s;
  }
  auto c = std::unique_ptr<NcclCommunicator>(new NcclCommunicator(std::move(name), size, rank, comm, stream, owns));
  if (!c->scratch_) return internal_error("NCCL group " + c->name_ + ": cudaMalloc of the barrier scratch failed");
  return c;
}

Result<std::unique_ptr<NcclCommunicator>> NcclCommunicator::split(std::string name, int color, int key) {
  ncclComm_t sub = nullptr;
  LONGCTX_RETURN_IF_ERROR(
      nccl_status(ncclCommSplit(comm_, color, key, &sub, nullptr), "ncclCommSplit(" + name + ")"));
  int n = 0, r = 0;
  ncclCommCount(sub, &n);
  ncclCommUserRank(sub, &r);
  cudaStream_t stream = nullptr;
  if (cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) != cudaSuccess) {
    ncclCommDestroy(sub);
    return internal_error("NCCL group " + name + ": cudaStreamCreate failed");
  }
  auto c = std::unique_ptr<NcclCommunicator>(new NcclCommunicator(std::move(name), n, r, sub, stream, true));
  if (!c->scratch_) return internal_error("NCCL group " + c->name_ + ": cudaMalloc of the barrier scratch failed");
  return c;
}

// The Communicator interface reports failures by throwing (a collective cannot return
// half a result); the message names the group and the call.
void NcclCommunicator::check(ncclResult_t r, const char* what) const {
  const Status s = nccl_status(r, std::string(what) + " on " + name_);
  if (!s.is_ok()) throw StatusError(s);
}

void NcclCommunicator::all_reduce_sum(float* data, int64_t count) {
  check(ncclAllReduce(data, data, static_cast<size_t>(count), ncclFloat32, ncclSum, comm_, stream_), "all_reduce");
}

void NcclCommunicator::all_gather(const float* send, int64_t count, float* recv) {
  check(ncclAllGather(send, recv, static_cast<size_t>(count), ncclFloat32, comm_, stream_), "all_gather");
}

void NcclCommunicator::reduce_scatter_sum(const float* send, int64_t count, float* recv) {
  check(ncclReduceScatter(send, recv, static_cast<size_t>(count), ncclFloat32, ncclSum, comm_, stream_),
        "reduce_scatter");
}

void NcclCommunicator::all_to_all(const float* send, int64_t count, float* recv) {
  const size_t n = static_cast<size_t>(count);
  check(ncclGroupStart(), "all_to_all");
  for (int j = 0; j < size_; ++j) {
    check(ncclSend(send + static_cast<size_t>(j) * n, n, ncclFloat32, j, comm_, stream_), "all_to_all send");
    check(ncclRecv(recv + static_cast<size_t>(j) * n, n, ncclFloat32, j, comm_, stream_), "all_to_all recv");
  }
  check(ncclGroupEnd(), "all_to_all");
}

void NcclCommunicator::broadcast(float* data, int64_t count, int root) {
  check(ncclBroadcast(data, data, static_cast<size_t>(count), ncclFloat32, root, comm_, stream_), "broadcast");
}

void NcclCommunicator::send(const float* data, int64_t count, int peer) {
  check(ncclSend(data, static_cast<size_t>(count), ncclFloat32, peer, comm_, stream_), "send");
}

void NcclCommunicator::recv(float* data, int64_t count, int peer) {
  check(ncclRecv(data, static_cast<size_t>(count), ncclFloat32, peer, comm_, stream_), "recv");
}

void NcclCommunicator::sendrecv(const float* send_data, int64_t send_count, int to, float* recv_data,
                                int64_t recv_count, int from) {
  check(ncclGroupStart(), "sendrecv");
  check(ncclSend(send_data, static_cast<size_t>(send_count), ncclFloat32, to, comm_, stream_), "sendrecv send");
  check(ncclRecv(recv_data, static_cast<size_t>(recv_count), ncclFloat32, from, comm_, stream_), "sendrecv recv");
  check(ncclGroupEnd(), "sendrecv");
}

void NcclCommunicator::barrier() {
  check(ncclAllReduce(scratch_, scratch_, 1, ncclFloat32, ncclSum, comm_, stream_), "barrier");
  synchronize();
}

void NcclCommunicator::synchronize() {
  const cudaError_t e = cudaStreamSynchronize(stream_);
  if (e != cudaSuccess)
    throw StatusError(internal_error("stream of NCCL group " + name_ + ": " + cudaGetErrorString(e)));
}

Result<RankCommunicators> nccl_rank_communicators(NcclCommunicator& world, const ParallelLayout& layout,
                                                  int rank) {
  if (world.size() != layout.world_size() || world.rank() != rank)
    return invalid_argument("NCCL world of " + std::to_string(world.size()) + " ranks (this one " +
                            std::to_string(world.rank()) + ") does not match the layout " + layout.to_string() +
                            " at rank " + std::to_string(rank));
  // One split per group kind, in the same order on every rank. A group's color is its
  // lowest global rank (unique per group); the key orders members as the layout does.
  const auto carve = [&](const ProcessGroup& g) -> Result<std::unique_ptr<Communicator>> {
    const int color = *std::min_element(g.ranks.begin(), g.ranks.end());
    LONGCTX_ASSIGN_OR_RETURN(auto c, world.split(g.name, color, g.index_of(rank)));
    return std::unique_ptr<Communicator>(std::move(c));
  };
  RankCommunicators rc;
  LONGCTX_ASSIGN_OR_RETURN(rc.world, carve(layout.world_group()));
  LONGCTX_ASSIGN_OR_RETURN(rc.tp, carve(layout.tp_group(rank)));
  LONGCTX_ASSIGN_OR_RETURN(rc.dcp, carve(layout.dcp_group(rank)));
  LONGCTX_ASSIGN_OR_RETURN(rc.cp, carve(layout.cp_group(rank)));
  LONGCTX_ASSIGN_OR_RETURN(rc.kvp, carve(layout.kvp_group(rank)));
  LONGCTX_ASSIGN_OR_RETURN(rc.pp, carve(layout.pp_group(rank)));
  // The optional groups: every rank takes the same branch (they depend on the layout only).
  if (layout.config().ep > 1) {
    LONGCTX_ASSIGN_OR_RETURN(rc.ep, carve(layout.ep_group(rank)));
  }
  if (layout.config().helix) {
    LONGCTX_ASSIGN_OR_RETURN(rc.helix, carve(layout.helix_group(rank)));
  }
  return rc;
}

}  // namespace longctx
