#include "sim/simulator.h"

#include <memory>
#include <unordered_map>

namespace longctx {

Result<SimResult> simulate(const std::vector<TraceRequest>& trace, const SimConfig& cfg,
                           const CostModel& cost) {
  if (Status st = cfg.scheduler.validate(); !st.is_ok()) return st;
  auto policy = make_policy(cfg.policy, &cost, cfg.deadlines);
  if (!policy.is_ok()) return policy.status();
  std::optional<AdaptiveChunkSizer> sizer;
  if (cfg.adaptive_chunking) {
    if (Status st = cfg.adaptive_chunking->validate(); !st.is_ok()) return st;
    sizer.emplace(cost, *cfg.adaptive_chunking);
  }
  KVCacheManager kv(cfg.kv);
  Scheduler sched(cfg.scheduler, kv, std::move(*policy));
  if (sizer) sched.set_chunk_sizer(&*sizer);

  SimResult res;
  res.policy = cfg.policy;
  res.requests.resize(trace.size());
  std::unordered_map<RequestId, std::unique_ptr<Request>> live;
  std::unordered_map<RequestId, double> last_token_s;
  size_t next = 0;
  double now = 0;
  while (next < trace.size() || sched.has_unfinished()) {
    for (; next < trace.size() && trace[next].arrival_s <= now; ++next) {
      const TraceRequest& t = trace[next];
      SimRequest& rec = res.requests[next];
      rec.index = static_cast<int64_t>(next);
      rec.arrival_s = t.arrival_s;
      rec.prompt_tokens = t.prompt_tokens;
      rec.output_tokens = t.output_tokens;
      auto r = std::make_unique<Request>();
      r->id = static_cast<RequestId>(next);
      r->token_ids.assign(static_cast<size_t>(t.prompt_tokens), 0);
      r->num_prompt_tokens = t.prompt_tokens;
      r->max_tokens = t.output_tokens;
      r->arrival_time_s = t.arrival_s;
      if (Status st = sched.add_request(r.get()); !st.is_ok()) {
        rec.rejected = true;
        rec.reject_reason = st.message();
        continue;
      }
      live.emplace(r->id, std::move(r));
    }
    if (!sched.has_unfinished()) {
      if (next < trace.size()) now = std::max(now, trace[next].arrival_s);
      continue;
    }
    StepPlan plan = sched.schedule(now);
    res.num_preemptions += static_cast<int64_t>(plan.preempted.size());
    if (plan.empty()) {
      // Nothing can run (e.g. max_num_seqs of requests all waiting on memory): only an
      // arrival could change that, and arrivals never free memory.
      return internal_error("simulation stalled at t=" + std::to_string(now) + " s with " +
                            std::to_string(sched.num_waiting()) + " waiting and " +
                            std::to_string(sched.num_running()) + " running requests");
    }
    const std::vector<ChunkWork> work = step_work(plan);
    const double dt = cost.step_time_s(work);
    now += dt;
    res.busy_s += dt;
    res.num_steps += 1;
    sched.on_step_done(plan);
    for (const ScheduledChunk& c : plan.chunks) {
      if (!c.sample) continue;
      auto it = live.find(c.request_id);
      if (it == live.end()) continue;
      Request& r = *it->second;
      SimRequest& rec = res.requests[static_cast<size_t>(r.id)];
      r.token_ids.push_back(0);
      if (rec.first_token_s < 0) {
        rec.first_token_s = now;
      } else {
        rec.tbt_s.push_back(now - last_token_s[r.id]);
      }
      last_token_s[r.id] = now;
      if (r.num_output_tokens() >= r.max_tokens) {
        rec.finish_s = now;
        rec.num_preemptions = r.num_preemptions;
        sched.finish(r.id);
        last_token_s.erase(r.id);
        live.erase(it);
      }
    }
  }
  res.duration_s = now;
  return res;
}

}  // namespace longctx
