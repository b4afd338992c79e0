// RequestChannel: the hand-over point between the engine thread and one HTTP handler.
// The engine thread pushes the outputs of the handler's engine requests; the handler
// thread waits on the condition variable for them. One channel per HTTP request (a
// completions request with several prompts has several engine requests on it).
//
// Threading: every method is thread-safe; push/expect/close come from the engine
// thread, wait/done from the handler.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "engine/request_output.h"

namespace longctx::server {

class RequestChannel {
 public:
  // Engine thread: n more sequences will report here (called when a request is admitted).
  void expect(int64_t sequences);
  void push(RequestOutput out);
  // Engine thread: ends the channel with an error (the engine thread is going away, or
  // failed); unfinished sequences will never report.
  void close(std::string error);

  // Handler thread: what arrived, waiting up to `timeout` when nothing has yet.
  std::vector<RequestOutput> wait(std::chrono::milliseconds timeout);
  // Every expected sequence finished (or the channel closed) and every output was taken.
  bool done() const;
  // Set when closed with an error.
  std::string error() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<RequestOutput> outputs_;
  int64_t unfinished_ = 0;
  bool closed_ = false;
  std::string error_;
};

}  // namespace longctx::server
