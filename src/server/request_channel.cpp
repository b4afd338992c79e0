#include "server/request_channel.h"

namespace longctx::server {

void RequestChannel::expect(int64_t sequences) {
  std::lock_guard<std::mutex> lock(mu_);
  unfinished_ += sequences;
}

void RequestChannel::push(RequestOutput out) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    if (out.finished) --unfinished_;
    outputs_.push_back(std::move(out));
  }
  cv_.notify_all();
}

void RequestChannel::close(std::string error) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    closed_ = true;
    error_ = std::move(error);
    unfinished_ = 0;
  }
  cv_.notify_all();
}

std::vector<RequestOutput> RequestChannel::wait(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return !outputs_.empty() || unfinished_ <= 0 || closed_; });
  std::vector<RequestOutput> out(std::make_move_iterator(outputs_.begin()),
                                 std::make_move_iterator(outputs_.end()));
  outputs_.clear();
  return out;
}

bool RequestChannel::done() const {
  std::lock_guard<std::mutex> lock(mu_);
  return (unfinished_ <= 0 || closed_) && outputs_.empty();
}

std::string RequestChannel::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

}  // namespace longctx::server
