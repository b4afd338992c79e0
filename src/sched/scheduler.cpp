#include "sched/scheduler.h"

#include <algorithm>
#include <cstdint>
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
  //
  // Admission reserves a request's whole remaining prompt: it is admitted only when the
  // blocks for all of its known tokens fit in the free blocks less what running prefills
  // have reserved but not yet written. Allocation stays chunk by chunk; the reservation is
  // bookkeeping. Without it, prefills that cannot all be resident (three 10M prompts in a
  // 17M-token cache) all start, fill the cache and preempt each other by recompute forever
  // under a policy that shares steps among them (LRS + adaptive chunking); with it, every
  // admitted prefill can finish (only decode growth, which is not reserved, can still force
  // a preemption). A request that does not fit is skipped, not waited on, so short requests
  // behind a long one still start; the long one starts when a running request frees room.
  if (plan.preempted.empty()) {
    policy_->order_waiting(waiting_, now_s);
    int64_t available = cfg_.reserve_prompt_kv ? kv_.num_free_blocks() - reserved_prefill_blocks() : INT64_MAX;
    std::vector<Request*> still_waiting;
    size_t i = 0;
    for (; i < waiting_.size() && budget > 0 && static_cast<int64_t>(running_.size()) < cfg_.max_num_seqs; ++i) {
      Request* r = waiting_[i];
      // Counted whole, prefix hits included: a cached prefix block may be free (ref 0) and
      // leave the free list when taken, so this never under-counts.
      const int64_t need = cfg_.reserve_prompt_kv ? kv_.num_blocks_needed(r->num_tokens()) : 0;
      if (need > available) {
        still_waiting.push_back(r);
        continue;
      }
      // Looked up at every admission attempt: blocks found in an earlier step may have
      // been evicted since.
      const int64_t computed = kv_.find_cached_prefix(r->id, r->token_ids, r->cache_salt);
      const int64_t num_new = size_chunk(*r, computed, std::min(r->num_tokens() - computed, budget), plan);
      if (!kv_.allocate(r->id, r->token_ids, computed, num_new, computed)) break;
      available -= need;
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
    // Not admitted: the skipped ones, then everything from where the loop stopped (in
    // policy order; the next step orders them again anyway).
    still_waiting.insert(still_waiting.end(), waiting_.begin() + static_cast<std::ptrdiff_t>(i), waiting_.end());
    waiting_ = std::move(still_waiting);
  }
  return plan;
}

int64_t Scheduler::reserved_prefill_blocks() const {
  int64_t reserved = 0;
  for (const Request* r : running_) {
    if (!r->is_prefilling()) continue;  // decode growth is not reserved
    const int64_t held = static_cast<int64_t>(kv_.block_table(r->id).size());
    reserved += std::max<int64_t>(0, kv_.num_blocks_needed(r->num_tokens()) - held);
  }
  return reserved;
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
