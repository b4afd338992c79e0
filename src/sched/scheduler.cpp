#include "sched/scheduler.h"

#include <algorithm>
#include <string>

namespace longctx {

Status SchedulerConfig::validate() const {
  if (max_num_batched_tokens < 1)
    return invalid_argument("--max-num-batched-tokens must be >= 1, got " + std::to_string(max_num_batched_tokens));
  if (max_num_seqs < 1) return invalid_argument("--max-num-seqs must be >= 1, got " + std::to_string(max_num_seqs));
  if (max_model_len < 1) return invalid_argument("--max-model-len must be >= 1, got " + std::to_string(max_model_len));
  return Status::ok();
}

Scheduler::Scheduler(const SchedulerConfig& cfg, KVCacheManager& kv, std::unique_ptr<SchedulingPolicy> policy)
    : cfg_(cfg), kv_(kv), policy_(std::move(policy)) {}

Status Scheduler::add_request(Request* r) {
  if (r->num_prompt_tokens < 1) return invalid_argument("the prompt is empty (at least one token is needed)");
  const int64_t total = r->num_prompt_tokens + r->max_tokens;
  if (total > cfg_.max_model_len)
    return invalid_argument("prompt (" + std::to_string(r->num_prompt_tokens) + " tokens) + max_tokens (" +
                            std::to_string(r->max_tokens) + ") = " + std::to_string(total) +
                            " exceeds the model's context length of " + std::to_string(cfg_.max_model_len) +
                            " tokens");
  if (!kv_.can_ever_fit(total))
    return invalid_argument("prompt + max_tokens = " + std::to_string(total) + " tokens needs " +
                            std::to_string(kv_.num_blocks_needed(total)) + " KV blocks but the cache has only " +
                            std::to_string(kv_.num_total_blocks()) + " (raise --kv-cache-memory)");
  r->status = RequestStatus::kWaiting;
  waiting_.push_back(r);
  return Status::ok();
}

void Scheduler::preempt(Request* r, StepPlan& plan) {
  kv_.free(r->id);
  r->num_computed_tokens = 0;
  r->num_cached_tokens = -1;  // look the prefix up again: some of it may still be cached
  r->num_preemptions += 1;
  r->status = RequestStatus::kWaiting;
  waiting_.push_back(r);  // keeps its arrival time, so FCFS puts it back in front
  plan.preempted.push_back(r->id);
}

int64_t Scheduler::size_chunk(const Request& r, int64_t start, int64_t num_new, const StepPlan& plan) const {
  if (!chunk_sizer_ || num_new <= 1) return num_new;
  return std::clamp<int64_t>(chunk_sizer_->chunk_tokens(r, start, num_new, plan), 1, num_new);
}

StepPlan Scheduler::schedule(double now_s) {
  StepPlan plan;
  int64_t budget = cfg_.max_num_batched_tokens;
  policy_->order_running(running_, now_s);

  // 1. Running requests: decodes and unfinished prefills, in priority order.
  for (size_t i = 0; i < running_.size() && budget > 0;) {
    Request* r = running_[i];
    if (r->num_uncomputed_tokens() == 0) {  // waiting for its sampled token
      ++i;
      continue;
    }
    const int64_t num_new =
        size_chunk(*r, r->num_computed_tokens, std::min(r->num_uncomputed_tokens(), budget), plan);
    bool scheduled = false;
    while (true) {
      if (kv_.allocate(r->id, r->token_ids, r->num_computed_tokens, num_new)) {
        scheduled = true;
        break;
      }
      // Out of blocks: preempt the lowest-priority running request (maybe r itself).
      Request* victim = running_.back();
      running_.pop_back();
      // A victim already in this plan would run on freed blocks: drop its chunk.
      for (auto it = plan.chunks.begin(); it != plan.chunks.end(); ++it) {
        if (it->request_id == victim->id) {
          budget += it->num_tokens;
          plan.num_batched_tokens -= it->num_tokens;
          plan.chunks.erase(it);
          break;
        }
      }
      preempt(victim, plan);
      if (victim == r) break;
    }
    if (!scheduled) break;  // r was the lowest priority left
    ScheduledChunk c;
    c.request_id = r->id;
    c.start = r->num_computed_tokens;
    c.num_tokens = num_new;
    c.sample = r->num_computed_tokens + num_new == r->num_tokens();
    if (cfg_.fill_block_tables) c.block_table = kv_.block_table(r->id);
    plan.chunks.push_back(std::move(c));
    plan.num_batched_tokens += num_new;
    budget -= num_new;
    ++i;
  }

  // 2. Waiting requests, unless this step had to preempt (then memory is short).
  if (plan.preempted.empty()) {
    policy_->order_waiting(waiting_, now_s);
    size_t admitted = 0;
    for (; admitted < waiting_.size() && budget > 0 &&
           static_cast<int64_t>(running_.size()) < cfg_.max_num_seqs;
         ++admitted) {
      Request* r = waiting_[admitted];
      // Looked up at every admission attempt: blocks found in an earlier step may have
      // been evicted since.
      const int64_t computed = kv_.find_cached_prefix(r->id, r->token_ids, r->cache_salt);
      const int64_t num_new = size_chunk(*r, computed, std::min(r->num_tokens() - computed, budget), plan);
      if (!kv_.allocate(r->id, r->token_ids, computed, num_new, computed)) break;
      r->num_cached_tokens = computed;
      r->num_computed_tokens = computed;
      r->status = RequestStatus::kRunning;
      running_.push_back(r);
      ScheduledChunk c;
      c.request_id = r->id;
      c.start = computed;
      c.num_tokens = num_new;
      c.sample = computed + num_new == r->num_tokens();
      if (cfg_.fill_block_tables) c.block_table = kv_.block_table(r->id);
      plan.chunks.push_back(std::move(c));
      plan.num_batched_tokens += num_new;
      budget -= num_new;
    }
    waiting_.erase(waiting_.begin(), waiting_.begin() + static_cast<std::ptrdiff_t>(admitted));
  }
  return plan;
}

Request* Scheduler::find(RequestId id) const {
  for (Request* r : running_)
    if (r->id == id) return r;
  return nullptr;
}

void Scheduler::on_step_done(const StepPlan& plan) {
  for (const ScheduledChunk& c : plan.chunks) {
    Request* r = find(c.request_id);
    if (!r) continue;  // finished or aborted meanwhile
    r->num_computed_tokens = c.start + c.num_tokens;
    kv_.commit_computed(r->id, r->token_ids, r->num_computed_tokens);
  }
}

void Scheduler::finish(RequestId id) {
  auto drop = [id](std::vector<Request*>& v) {
    auto it = std::find_if(v.begin(), v.end(), [id](const Request* r) { return r->id == id; });
    if (it == v.end()) return false;
    (*it)->status = RequestStatus::kFinished;
    v.erase(it);
    return true;
  };
  if (!drop(running_)) drop(waiting_);
  kv_.free(id);
}

}  // namespace longctx
