// EngineLoop: the one thread that owns the LLMEngine (it is single-threaded by design).
// HTTP handler threads never call the engine: they hand submissions and aborts over
// through a queue guarded by a mutex, and wait for outputs on their RequestChannel.
// The engine thread drains the queue between steps, steps while work is unfinished and
// sleeps on a condition variable otherwise.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/llm_engine.h"
#include "server/request_channel.h"

namespace longctx::server {

class EngineLoop {
 public:
  // Takes the engine over and starts its thread.
  explicit EngineLoop(std::unique_ptr<LLMEngine> engine);
  // Stops the thread; channels still waiting are closed with an error.
  ~EngineLoop();
  EngineLoop(const EngineLoop&) = delete;
  EngineLoop& operator=(const EngineLoop&) = delete;

  // Admits all the requests or none (a refused one aborts those admitted before it);
  // their outputs go to `channel`. Blocks until the engine thread answered: the engine's
  // InvalidArgument (400) or ResourceExhausted (429) come back as they are.
  Result<std::vector<RequestId>> submit(std::vector<GenerationRequest> requests,
                                        std::shared_ptr<RequestChannel> channel);
  // Queues aborts (their blocks are freed at the engine thread's next turn).
  void abort(std::vector<RequestId> ids);
  void abort_all();

  // Engine requests admitted and not yet finished.
  int64_t num_active() const { return num_active_.load(); }
  // Thread-safe reads: the metrics are locked inside; the rest is fixed at construction.
  EngineMetricsSnapshot metrics() const { return metrics_.snapshot(); }
  int64_t num_kv_blocks() const { return num_kv_blocks_; }
  const EngineConfig& config() const { return config_; }

 private:
  struct Submission {
    std::vector<GenerationRequest> requests;
    std::shared_ptr<RequestChannel> channel;
    std::promise<Result<std::vector<RequestId>>> answer;
    bool answered = false;
  };
  struct Active {
    std::shared_ptr<RequestChannel> channel;
    int64_t unfinished = 0;  // sequences (n per request)
  };

  void run();
  void admit(Submission& s);
  void dispatch(std::vector<RequestOutput> outs);

  std::unique_ptr<LLMEngine> engine_;  // the engine thread's alone once it runs
  const EngineMetrics& metrics_;
  const EngineConfig config_;
  const int64_t num_kv_blocks_;

  std::mutex mu_;  // guards the queue below
  std::condition_variable cv_;
  std::vector<Submission*> submissions_;
  std::vector<RequestId> aborts_;
  bool abort_all_ = false;
  bool stop_ = false;

  std::map<RequestId, Active> active_;  // engine thread only
  std::atomic<int64_t> num_active_{0};
  std::thread thread_;
};

}  // namespace longctx::server
