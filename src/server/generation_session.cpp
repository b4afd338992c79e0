#include "server/generation_session.h"

#include <algorithm>

namespace longctx::server {

Result<std::shared_ptr<GenerationSession>> GenerationSession::start(EngineLoop& loop,
                                                                    const OpenAIRequest& req) {
  std::shared_ptr<GenerationSession> s(new GenerationSession(loop, req.params.n));
  const size_t num_choices = req.prompts.size() * static_cast<size_t>(req.params.n);
  s->choices_.resize(num_choices);
  s->started_.assign(num_choices, false);
  for (size_t c = 0; c < num_choices; ++c)
    s->choices_[c].prompt_index = static_cast<int64_t>(c / static_cast<size_t>(req.params.n));
  for (const PromptInput& p : req.prompts)
    s->prompt_tokens_.push_back(static_cast<int64_t>(p.token_ids.size()));
  s->cached_tokens_.assign(req.prompts.size(), 0);
  auto ids = loop.submit(req.engine_requests(), s->channel_);
  if (!ids.is_ok()) {
    s->cancelled_ = true;  // nothing to abort
    return ids.status();
  }
  s->ids_ = std::move(*ids);
  return s;
}

GenerationSession::~GenerationSession() {
  if (!channel_->done()) cancel();
}

void GenerationSession::cancel() {
  if (cancelled_) return;
  cancelled_ = true;
  loop_.abort(ids_);
}

std::vector<GenerationSession::Delta> GenerationSession::next(std::chrono::milliseconds timeout) {
  std::vector<Delta> deltas;
  for (RequestOutput& o : channel_->wait(timeout)) {
    const size_t prompt =
        static_cast<size_t>(std::find(ids_.begin(), ids_.end(), o.request_id) - ids_.begin());
    if (prompt >= ids_.size()) continue;
    const int64_t index = static_cast<int64_t>(prompt) * n_ + o.index;
    ChoiceState& c = choices_[static_cast<size_t>(index)];
    Delta d{index, std::move(o), !started_[static_cast<size_t>(index)], c.text.size()};
    started_[static_cast<size_t>(index)] = true;
    const RequestOutput& out = d.output;
    c.token_ids.insert(c.token_ids.end(), out.new_token_ids.begin(), out.new_token_ids.end());
    c.text += out.text;
    c.logprobs.insert(c.logprobs.end(), out.logprobs.begin(), out.logprobs.end());
    if (out.prompt_logprobs)  // sent once per prompt; every continuation of it shows them
      for (int64_t k = 0; k < n_; ++k)
        choices_[prompt * static_cast<size_t>(n_) + static_cast<size_t>(k)].prompt_logprobs =
            out.prompt_logprobs;
    if (out.finished) {
      c.finished = true;
      c.finish_reason = out.finish_reason;
      c.stop_reason = out.stop_reason;
    }
    cached_tokens_[prompt] = std::max(cached_tokens_[prompt], out.num_cached_tokens);
    deltas.push_back(std::move(d));
  }
  return deltas;
}

UsageCounts GenerationSession::usage() const {
  UsageCounts u;
  for (int64_t p : prompt_tokens_) u.prompt_tokens += p;
  for (int64_t c : cached_tokens_) u.cached_tokens += c;
  for (const ChoiceState& c : choices_) u.completion_tokens += static_cast<int64_t>(c.token_ids.size());
  return u;
}

}  // namespace longctx::server
