#include "parallel_nccl/stream_joined_communicator.h"

#include <string>
#include <utility>

#include "core/status.h"

namespace longctx {
namespace {

void cuda_ok(cudaError_t e, const std::string& what) {
  if (e != cudaSuccess) throw StatusError(internal_error(what + ": " + cudaGetErrorString(e)));
}

}  // namespace

StreamJoinedCommunicator::StreamJoinedCommunicator(std::unique_ptr<Communicator> inner,
                                                   cudaStream_t inner_stream, cudaStream_t stream)
    : inner_(std::move(inner)), inner_stream_(inner_stream), stream_(stream) {
  cuda_ok(cudaEventCreateWithFlags(&before_, cudaEventDisableTiming), "stream join " + name());
  cuda_ok(cudaEventCreateWithFlags(&after_, cudaEventDisableTiming), "stream join " + name());
}

StreamJoinedCommunicator::~StreamJoinedCommunicator() {
  if (before_) cudaEventDestroy(before_);
  if (after_) cudaEventDestroy(after_);
}

template <typename F>
void StreamJoinedCommunicator::joined(F&& f) {
  cuda_ok(cudaEventRecord(before_, stream_), "stream join " + name());
  cuda_ok(cudaStreamWaitEvent(inner_stream_, before_, 0), "stream join " + name());
  f();
  cuda_ok(cudaEventRecord(after_, inner_stream_), "stream join " + name());
  cuda_ok(cudaStreamWaitEvent(stream_, after_, 0), "stream join " + name());
}

void StreamJoinedCommunicator::all_reduce_sum(float* data, int64_t count) {
  joined([&] { inner_->all_reduce_sum(data, count); });
}
void StreamJoinedCommunicator::all_gather(const float* send, int64_t count, float* recv) {
  joined([&] { inner_->all_gather(send, count, recv); });
}
void StreamJoinedCommunicator::reduce_scatter_sum(const float* send, int64_t count, float* recv) {
  joined([&] { inner_->reduce_scatter_sum(send, count, recv); });
}
void StreamJoinedCommunicator::all_to_all(const float* send, int64_t count, float* recv) {
  joined([&] { inner_->all_to_all(send, count, recv); });
}
void StreamJoinedCommunicator::broadcast(float* data, int64_t count, int root) {
  joined([&] { inner_->broadcast(data, count, root); });
}
void StreamJoinedCommunicator::send(const float* data, int64_t count, int peer) {
  joined([&] { inner_->send(data, count, peer); });
}
void StreamJoinedCommunicator::recv(float* data, int64_t count, int peer) {
  joined([&] { inner_->recv(data, count, peer); });
}
void StreamJoinedCommunicator::sendrecv(const float* send_data, int64_t send_count, int to, float* recv_data,
                                        int64_t recv_count, int from) {
  joined([&] { inner_->sendrecv(send_data, send_count, to, recv_data, recv_count, from); });
}
void StreamJoinedCommunicator::barrier() {
  cuda_ok(cudaStreamSynchronize(stream_), "stream join " + name());
  inner_->barrier();
}

}  // namespace longctx
