#include "sim/simulator.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <queue>
#include <unordered_map>

namespace longctx {
namespace {

constexpr double kNever = std::numeric_limits<double>::infinity();

// A sampled token on its way out of the pipeline.
struct Delivery {
  double time_s;
  RequestId id;
  bool operator>(const Delivery& o) const { return time_s != o.time_s ? time_s > o.time_s : id > o.id; }
};

// One model instance: its own scheduler, KV cache and clock.
struct Replica {
  int64_t pool = 0, index = 0;
  const CostModel* cost = nullptr;
  std::unique_ptr<KVCacheManager> kv;
  std::unique_ptr<Scheduler> sched;
  std::optional<AdaptiveChunkSizer> sizer;
  double ready_s = 0;  // when it can start its next step
  bool idle = true;    // nothing to do until an arrival (or a delivery)
  bool woke = false;   // its next step is the first after being idle
  double load = 0;     // outstanding prompt + output tokens (routing)
  std::priority_queue<Delivery, std::vector<Delivery>, std::greater<>> deliveries;
};

}  // namespace

Status SimPool::validate() const {
  if (!cost) return invalid_argument("pool " + name + ": no cost model");
  if (replicas < 1) return invalid_argument("pool " + name + ": replicas must be >= 1");
  if (Status st = kv.validate(); !st.is_ok()) return st;
  if (min_prompt_tokens >= max_prompt_tokens)
    return invalid_argument("pool " + name + ": empty prompt range [" + std::to_string(min_prompt_tokens) + ", " +
                            std::to_string(max_prompt_tokens) + ")");
  return Status::ok();
}

Result<SimResult> simulate(const std::vector<TraceRequest>& trace, const SimConfig& cfg, const CostModel& cost) {
  SimPool pool;
  pool.cost = &cost;
  pool.kv = cfg.kv;
  pool.max_model_len = cfg.scheduler.max_model_len;
  return simulate_pools(trace, cfg, {pool});
}

Result<SimResult> simulate_pools(const std::vector<TraceRequest>& trace, const SimConfig& cfg,
                                 const std::vector<SimPool>& pools) {
  if (pools.empty()) return invalid_argument("simulation needs at least one pool");
  if (!(cfg.request_overhead_s >= 0))
    return invalid_argument("--request-overhead must be >= 0 seconds, got " + std::to_string(cfg.request_overhead_s));
  if (!(cfg.step_scale > 0))
    return invalid_argument("--step-scale must be > 0, got " + std::to_string(cfg.step_scale));
  if (!(cfg.idle_wake_s >= 0))
    return invalid_argument("--idle-wake must be >= 0 seconds, got " + std::to_string(cfg.idle_wake_s));
  const double overhead = cfg.request_overhead_s;
  if (cfg.adaptive_chunking)
    if (Status st = cfg.adaptive_chunking->validate(); !st.is_ok()) return st;
  std::vector<std::unique_ptr<Replica>> replicas;
  std::vector<std::vector<Replica*>> by_pool(pools.size());
  for (size_t p = 0; p < pools.size(); ++p) {
    const SimPool& pool = pools[p];
    if (Status st = pool.validate(); !st.is_ok()) return st;
    SchedulerConfig sc = cfg.scheduler;
    sc.max_model_len = pool.max_model_len;
    sc.fill_block_tables = false;  // nothing executes the plan
    if (Status st = sc.validate(); !st.is_ok()) return st;
    for (int64_t i = 0; i < pool.replicas; ++i) {
      auto policy = make_policy(cfg.policy, pool.cost, cfg.deadlines);
      if (!policy.is_ok()) return policy.status();
      auto r = std::make_unique<Replica>();
      r->pool = static_cast<int64_t>(p);
      r->index = i;
      r->cost = pool.cost;
      r->kv = std::make_unique<KVCacheManager>(pool.kv);
      r->sched = std::make_unique<Scheduler>(sc, *r->kv, std::move(*policy));
      if (cfg.adaptive_chunking) {
        r->sizer.emplace(*pool.cost, *cfg.adaptive_chunking);
        r->sched->set_chunk_sizer(&*r->sizer);
      }
      by_pool[p].push_back(r.get());
      replicas.push_back(std::move(r));
    }
  }

  SimResult res;
  res.policy = cfg.policy;
  res.num_replicas = static_cast<int64_t>(replicas.size());
  res.requests.resize(trace.size());
  std::unordered_map<RequestId, std::unique_ptr<Request>> live;
  std::unordered_map<RequestId, double> last_token_s;
  double end_s = 0;

  // A sampled token reaches its request: record it, finish the request at its length.
  auto deliver = [&](Replica& rep, RequestId id, double t) {
    auto it = live.find(id);
    if (it == live.end()) return;
    Request& r = *it->second;
    SimRequest& rec = res.requests[static_cast<size_t>(id)];
    r.token_ids.push_back(0);
    if (rec.first_token_s < 0) {
      rec.first_token_s = t;
    } else {
      rec.tbt_s.push_back(t - last_token_s[id]);
    }
    last_token_s[id] = t;
    end_s = std::max(end_s, t);
    if (r.num_output_tokens() >= r.max_tokens) {
      rec.finish_s = t;
      rec.num_preemptions = r.num_preemptions;
      rep.sched->finish(id);
      rep.load -= static_cast<double>(rec.prompt_tokens + rec.output_tokens);
      last_token_s.erase(id);
      live.erase(it);
    }
  };

  auto route = [&](const TraceRequest& t, size_t index) {
    SimRequest& rec = res.requests[index];
    rec.index = static_cast<int64_t>(index);
    rec.arrival_s = t.arrival_s;
    rec.prompt_tokens = t.prompt_tokens;
    rec.output_tokens = t.output_tokens;
    size_t p = 0;
    while (p < pools.size() &&
           !(t.prompt_tokens >= pools[p].min_prompt_tokens && t.prompt_tokens < pools[p].max_prompt_tokens))
      ++p;
    if (p == pools.size()) {
      rec.rejected = true;
      rec.reject_reason = "no pool takes prompts of " + std::to_string(t.prompt_tokens) + " tokens";
      return;
    }
    Replica* rep = by_pool[p].front();
    for (Replica* c : by_pool[p])
      if (c->load < rep->load) rep = c;
    rec.pool = static_cast<int64_t>(p);
    rec.replica = rep->index;
    auto r = std::make_unique<Request>();
    r->id = static_cast<RequestId>(index);
    r->token_ids.assign(static_cast<size_t>(t.prompt_tokens), 0);
    r->num_prompt_tokens = t.prompt_tokens;
    r->max_tokens = t.output_tokens;
    r->arrival_time_s = t.arrival_s + overhead;
    if (Status st = rep->sched->add_request(r.get()); !st.is_ok()) {
      rec.rejected = true;
      rec.reject_reason = st.message();
      return;
    }
    rep->load += static_cast<double>(t.prompt_tokens + t.output_tokens);
    live.emplace(r->id, std::move(r));
    if (rep->idle) {
      rep->idle = false;
      rep->woke = true;
      rep->ready_s = std::max(rep->ready_s, t.arrival_s + overhead);
    }
  };

  size_t next = 0;
  while (true) {
    const double arrival_s = next < trace.size() ? trace[next].arrival_s + overhead : kNever;
    Replica* rep = nullptr;
    for (auto& r : replicas)
      if (!r->idle && (!rep || r->ready_s < rep->ready_s)) rep = r.get();
    const double step_s = rep ? rep->ready_s : kNever;
    if (arrival_s == kNever && step_s == kNever) break;
    if (arrival_s <= step_s) {  // arrivals at a step boundary join that step
      route(trace[next], next);
      ++next;
      continue;
    }
    const double now = step_s;
    while (!rep->deliveries.empty() && rep->deliveries.top().time_s <= now) {
      const Delivery d = rep->deliveries.top();
      rep->deliveries.pop();
      deliver(*rep, d.id, d.time_s);
    }
    if (!rep->sched->has_unfinished()) {
      rep->idle = true;
      continue;
    }
    StepPlan plan = rep->sched->schedule(now);
    res.num_preemptions += static_cast<int64_t>(plan.preempted.size());
    if (plan.empty()) {
      if (!rep->deliveries.empty()) {  // everything runnable waits on the pipeline
        rep->ready_s = rep->deliveries.top().time_s;
        continue;
      }
      // Nothing can run (e.g. max_num_seqs of requests all waiting on memory): only an
      // arrival could change that, and arrivals never free memory.
      return internal_error("simulation stalled at t=" + std::to_string(now) + " s with " +
                            std::to_string(rep->sched->num_waiting()) + " waiting and " +
                            std::to_string(rep->sched->num_running()) + " running requests");
    }
    const double dt =
        cfg.step_scale * rep->cost->step_time_s(step_work(plan)) + (rep->woke ? cfg.idle_wake_s : 0.0);
    rep->woke = false;
    const double stages = static_cast<double>(rep->cost->pipeline_stages());
    rep->ready_s = now + dt;
    end_s = std::max(end_s, now + dt);
    res.busy_s += dt;
    res.num_steps += 1;
    rep->sched->on_step_done(plan);
    for (const ScheduledChunk& c : plan.chunks) {
      if (!c.sample) continue;
      if (stages <= 1) {
        deliver(*rep, c.request_id, now + dt);
      } else {
        rep->deliveries.push({now + dt * stages, c.request_id});
      }
    }
  }
  res.duration_s = end_s;
  return res;
}

}  // namespace longctx
