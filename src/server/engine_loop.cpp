#include "server/engine_loop.h"

#include <exception>

#include "core/logging.h"

namespace longctx::server {

EngineLoop::EngineLoop(std::unique_ptr<LLMEngine> engine)
    : engine_(std::move(engine)),
      metrics_(engine_->metrics()),
      config_(engine_->config()),
      num_kv_blocks_(engine_->num_kv_blocks()),
      thread_([this] { run(); }) {}

EngineLoop::~EngineLoop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Result<std::vector<RequestId>> EngineLoop::submit(std::vector<GenerationRequest> requests,
                                                  std::shared_ptr<RequestChannel> channel) {
  Submission s{std::move(requests), std::move(channel), {}};
  auto answer = s.answer.get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return Status(StatusCode::kInternal, "the engine is shutting down");
    submissions_.push_back(&s);
  }
  cv_.notify_all();
  return answer.get();  // `s` outlives the engine thread's use of it: it answers last
}

void EngineLoop::abort(std::vector<RequestId> ids) {
  if (ids.empty()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    aborts_.insert(aborts_.end(), ids.begin(), ids.end());
  }
  cv_.notify_all();
}

void EngineLoop::abort_all() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    abort_all_ = true;
  }
  cv_.notify_all();
}

void EngineLoop::admit(Submission& s) {
  std::vector<RequestId> ids;
  for (GenerationRequest& r : s.requests) {
    const int64_t n = r.n;
    auto id = engine_->add_request(std::move(r));
    if (!id.is_ok()) {
      // All or none: the ones admitted already go (their outputs have no channel yet).
      for (RequestId done : ids) engine_->abort(done);
      s.answered = true;
      s.answer.set_value(id.status());
      return;
    }
    ids.push_back(*id);
    s.channel->expect(n);
  }
  for (size_t i = 0; i < ids.size(); ++i) active_[ids[i]] = Active{s.channel, s.requests[i].n};
  num_active_ += static_cast<int64_t>(ids.size());
  s.answered = true;
  s.answer.set_value(std::move(ids));
}

void EngineLoop::dispatch(std::vector<RequestOutput> outs) {
  for (RequestOutput& o : outs) {
    auto it = active_.find(o.request_id);
    if (it == active_.end()) continue;  // refused with its siblings; nobody listens
    const bool finished = o.finished;
    it->second.channel->push(std::move(o));
    if (finished && --it->second.unfinished <= 0) {
      active_.erase(it);
      --num_active_;
    }
  }
}

void EngineLoop::run() {
  for (;;) {
    std::vector<Submission*> subs;
    std::vector<RequestId> aborts;
    bool abort_everything = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] {
        return stop_ || !submissions_.empty() || !aborts_.empty() || abort_all_ || engine_->has_unfinished();
      });
      if (stop_) break;
      subs.swap(submissions_);
      aborts.swap(aborts_);
      std::swap(abort_everything, abort_all_);
    }
    try {
      for (Submission* s : subs) admit(*s);
      if (abort_everything)
        for (const auto& [id, a] : active_) aborts.push_back(id);
      for (RequestId id : aborts) engine_->abort(id);
      // Aborted requests report at the next step, which also refreshes the KV gauges:
      // run one even when nothing else is left.
      if (engine_->has_unfinished() || !aborts.empty()) dispatch(engine_->step());
    } catch (const std::exception& e) {
      // A bug, not a request's fault: fail what is in flight, keep serving.
      LCTX_LOG_ERROR("engine thread: {}", e.what());
      for (Submission* s : subs)
        if (!s->answered)
          s->answer.set_value(Status(StatusCode::kInternal, std::string("internal error: ") + e.what()));
      for (auto& [id, a] : active_) {
        a.channel->close(std::string("internal error: ") + e.what());
        engine_->abort(id);
      }
      active_.clear();
      num_active_ = 0;
    }
  }
  // Shutting down: nobody will answer these any more.
  std::lock_guard<std::mutex> lock(mu_);
  for (Submission* s : submissions_)
    s->answer.set_value(Status(StatusCode::kInternal, "the engine is shutting down"));
  submissions_.clear();
  for (auto& [id, a] : active_) a.channel->close("the server is shutting down");
}

}  // namespace longctx::server
