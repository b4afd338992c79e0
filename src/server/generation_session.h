// GenerationSession: one HTTP request's generation — its engine requests (one per
// prompt), the channel their outputs arrive on, and the choices they accumulate into.
// Owned by the handler thread (shared with a stream's content provider, which runs
// on the same connection thread). Destroying an unfinished session aborts it, so a
// client that goes away frees its KV blocks.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "server/engine_loop.h"
#include "server/openai_request.h"
#include "server/openai_response.h"
#include "server/request_channel.h"

namespace longctx::server {

class GenerationSession {
 public:
  // Submits every prompt (all admitted or none): the engine's InvalidArgument and
  // ResourceExhausted come back as they are.
  static Result<std::shared_ptr<GenerationSession>> start(EngineLoop& loop, const OpenAIRequest& req);
  ~GenerationSession();
  GenerationSession(const GenerationSession&) = delete;
  GenerationSession& operator=(const GenerationSession&) = delete;

  struct Delta {
    int64_t choice = 0;
    RequestOutput output;
    bool first = false;      // the choice's first output
    size_t text_before = 0;  // bytes of the choice's text before this output
  };
  // New outputs (waiting up to `timeout` when none are there), folded into choices().
  std::vector<Delta> next(std::chrono::milliseconds timeout);
  bool done() const { return channel_->done(); }
  // An internal failure that ended the session early; empty when none.
  std::string error() const { return channel_->error(); }
  // Aborts the unfinished engine requests (client gone, server draining).
  void cancel();

  const std::vector<ChoiceState>& choices() const { return choices_; }
  UsageCounts usage() const;

 private:
  GenerationSession(EngineLoop& loop, int64_t n)
      : loop_(loop), n_(n), channel_(std::make_shared<RequestChannel>()) {}

  EngineLoop& loop_;
  int64_t n_;
  std::shared_ptr<RequestChannel> channel_;
  std::vector<RequestId> ids_;  // by prompt
  std::vector<int64_t> prompt_tokens_, cached_tokens_;
  std::vector<ChoiceState> choices_;
  std::vector<bool> started_;
  bool cancelled_ = false;
};

}  // namespace longctx::server
