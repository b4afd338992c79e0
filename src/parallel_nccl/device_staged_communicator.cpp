#include "parallel_nccl/device_staged_communicator.h"

#include <string>
#include <utility>

#include "core/status.h"
#include "parallel/host_communicator.h"

namespace longctx {
namespace {

void cuda_ok(cudaError_t e, const std::string& what) {
  if (e != cudaSuccess) throw StatusError(internal_error(what + ": " + cudaGetErrorString(e)));
}

}  // namespace

DeviceStagedCommunicator::DeviceStagedCommunicator(std::unique_ptr<Communicator> host, cudaStream_t stream)
    : host_(std::move(host)), stream_(stream) {}

// Both copies go on the rank's stream and are waited for. A plain cudaMemcpy from pageable
// memory runs on the legacy stream and may return before its DMA has landed, and the rank's
// non-blocking stream does not wait for that stream: the first version did so, and one
// layout run on an H100 (tp2 x pp2, the 2100-token prompt) got wrong logits on the last stage
// while the same run under memcheck (serialized) passed.
void DeviceStagedCommunicator::download(const float* src, int64_t count, std::vector<float>& h) {
  if (h.size() < static_cast<size_t>(count)) h.resize(static_cast<size_t>(count));
  if (count > 0)
    cuda_ok(cudaMemcpyAsync(h.data(), src, static_cast<size_t>(count) * sizeof(float), cudaMemcpyDeviceToHost,
                            stream_),
            "device-staged " + name() + ": download");
  cuda_ok(cudaStreamSynchronize(stream_), "device-staged " + name() + ": download");
}

void DeviceStagedCommunicator::upload(const std::vector<float>& h, int64_t count, float* dst) {
  if (count > 0)
    cuda_ok(cudaMemcpyAsync(dst, h.data(), static_cast<size_t>(count) * sizeof(float), cudaMemcpyHostToDevice,
                            stream_),
            "device-staged " + name() + ": upload");
  cuda_ok(cudaStreamSynchronize(stream_), "device-staged " + name() + ": upload");
}

void DeviceStagedCommunicator::all_reduce_sum(float* data, int64_t count) {
  download(data, count, in_);
  host_->all_reduce_sum(in_.data(), count);
  upload(in_, count, data);
}

void DeviceStagedCommunicator::all_gather(const float* send, int64_t count, float* recv) {
  const int64_t total = count * size();
  download(send, count, in_);
  if (out_.size() < static_cast<size_t>(total)) out_.resize(static_cast<size_t>(total));
  host_->all_gather(in_.data(), count, out_.data());
  upload(out_, total, recv);
}

void DeviceStagedCommunicator::reduce_scatter_sum(const float* send, int64_t count, float* recv) {
  download(send, count * size(), in_);
  if (out_.size() < static_cast<size_t>(count)) out_.resize(static_cast<size_t>(count));
  host_->reduce_scatter_sum(in_.data(), count, out_.data());
  upload(out_, count, recv);
}

void DeviceStagedCommunicator::all_to_all(const float* send, int64_t count, float* recv) {
  const int64_t total = count * size();
  download(send, total, in_);
  if (out_.size() < static_cast<size_t>(total)) out_.resize(static_cast<size_t>(total));
  host_->all_to_all(in_.data(), count, out_.data());
  upload(out_, total, recv);
}

void DeviceStagedCommunicator::broadcast(float* data, int64_t count, int root) {
  download(data, count, in_);
  host_->broadcast(in_.data(), count, root);
  upload(in_, count, data);
}

void DeviceStagedCommunicator::send(const float* data, int64_t count, int peer) {
  download(data, count, in_);
  host_->send(in_.data(), count, peer);  // buffered: returns once copied out
}

void DeviceStagedCommunicator::recv(float* data, int64_t count, int peer) {
  if (in_.size() < static_cast<size_t>(count)) in_.resize(static_cast<size_t>(count));
  // The stream may still read `data` (the previous step): wait before overwriting it.
  cuda_ok(cudaStreamSynchronize(stream_), "device-staged " + name() + ": the rank's stream");
  host_->recv(in_.data(), count, peer);
  upload(in_, count, data);
}

void DeviceStagedCommunicator::barrier() {
  cuda_ok(cudaStreamSynchronize(stream_), "device-staged " + name() + ": the rank's stream");
  host_->barrier();
}

RankCommunicators device_staged_rank_communicators(HostWorld& world, const ParallelLayout& layout, int rank,
                                                   cudaStream_t stream) {
  RankCommunicators host = RankCommunicators::host(world, layout, rank);
  auto wrap = [&](std::unique_ptr<Communicator>& c) -> std::unique_ptr<Communicator> {
    if (!c) return nullptr;
    return std::make_unique<DeviceStagedCommunicator>(std::move(c), stream);
  };
  RankCommunicators rc;
  rc.world = wrap(host.world);
  rc.tp = wrap(host.tp);
  rc.dcp = wrap(host.dcp);
  rc.cp = wrap(host.cp);
  rc.kvp = wrap(host.kvp);
  rc.pp = wrap(host.pp);
  rc.ep = wrap(host.ep);
  rc.helix = wrap(host.helix);
  return rc;
}

}  // namespace longctx
