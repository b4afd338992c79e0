#include "engine/llm_engine.h"

#include <algorithm>
#include <span>

#include "core/logging.h"
#include "perf/hardware.h"
#include "perf/model_shape.h"

namespace longctx {

struct LLMEngine::Sequence {
  Request req;  // req.id is this sequence's own id
  RequestId user_id = 0;
  int64_t index = 0;
  std::shared_ptr<const GenerationRequest> params;
  uint64_t seed = 0;  // its random stream's start (the CPU Sampler's and the device's)
  cpu::Sampler sampler;
  std::optional<IncrementalDetokenizer> detok;
  StopChecker stop;
  RequestTimings timings;
  bool started = false;  // handed to the scheduler (n > 1 siblings wait for the first's prefill)
  int64_t prompt_logprobs_done = 1;  // prompt positions with a logprob (position 0 has none)
  std::vector<std::optional<TokenLogprob>> prompt_logprobs;
  bool prompt_logprobs_sent = false;

  Sequence(std::shared_ptr<const GenerationRequest> p, uint64_t stream_seed)
      : params(std::move(p)),
        seed(stream_seed),
        sampler(params->sampling, stream_seed),
        stop(params->stop, params->include_stop_str_in_output) {}
};

Status EngineConfig::validate() const {
  if (block_size < 1 || (block_size & (block_size - 1)) != 0)
    return invalid_argument("--block-size must be a power of two, got " + std::to_string(block_size));
  if (num_kv_blocks <= 0 && kv_cache_memory_bytes <= 0)
    return invalid_argument("--kv-cache-memory must be > 0 bytes");
  if (max_waiting < 1) return invalid_argument("--max-waiting must be >= 1");
  if (spp_chunk_tokens < 0)
    return invalid_argument("--spp-chunk must be >= 0 tokens (0 = off), got " + std::to_string(spp_chunk_tokens));
  if (threads_per_rank < 0) return invalid_argument("--threads-per-rank must be >= 0");
  SchedulerConfig s = scheduler;
  if (s.max_model_len == 0) s.max_model_len = 1;  // filled from the model later
  return s.validate();
}

LLMEngine::LLMEngine(const DenseModel& model, const Tokenizer* tokenizer, EngineConfig cfg, KVCacheShape shape)
    : model_(model),
      tokenizer_(tokenizer),
      cfg_(std::move(cfg)),
      cache_(shape),
      runner_(model_, cache_),
      start_(std::chrono::steady_clock::now()) {}

Result<std::unique_ptr<LLMEngine>> LLMEngine::create(const DenseModel& model, const Tokenizer* tokenizer,
                                                     EngineConfig cfg) {
  return create(model, tokenizer, std::move(cfg), nullptr);
}

Result<std::unique_ptr<LLMEngine>> LLMEngine::create(const DenseModel& model, const Tokenizer* tokenizer,
                                                     EngineConfig cfg,
                                                     std::unique_ptr<ModelExecutor> executor) {
  LONGCTX_RETURN_IF_ERROR(cfg.validate());
  const ModelConfig& mc = model.config();
  if (cfg.scheduler.max_model_len == 0) cfg.scheduler.max_model_len = mc.max_position_embeddings;
  if (cfg.scheduler.max_model_len > mc.max_position_embeddings && mc.max_position_embeddings > 0)
    LCTX_LOG_WARN("--max-model-len {} exceeds the model's max_position_embeddings {}", cfg.scheduler.max_model_len,
                  mc.max_position_embeddings);
  // The layout: validated against the model's heads and layers (the message names the flag).
  ParallelConfig pc = cfg.parallel;
  pc.block_size = cfg.block_size;
  auto layout = ParallelLayout::create(pc, ShardedDenseModel::layout_dims(mc));
  if (!layout.is_ok()) return layout.status();
  const bool parallel = layout->world_size() > 1;
  if (executor && parallel)
    return invalid_argument(
        "--device cuda runs on one GPU; the parallel layout " + layout->to_string() +
        " runs on CPU ranks only so far (drop --tp/--pp/--cp/--dcp/--kvp or use --device cpu)");
  if (executor && executor->block_size() != cfg.block_size)
    return internal_error("the executor's KV blocks hold " + std::to_string(executor->block_size()) +
                          " tokens, the engine's --block-size is " + std::to_string(cfg.block_size));
  if (!parallel && cfg.spp_chunk_tokens > 0)
    LCTX_LOG_WARN("--spp-chunk {} has no effect without --pp > 1", cfg.spp_chunk_tokens);

  // KV budget per rank: --kv-cache-memory over the bytes one block of this rank's layers
  // and kv heads takes (the largest stage decides: every rank has the same budget).
  int64_t per_block = model.kv_cache_shape(1, cfg.block_size).bytes_per_block();
  if (parallel) {
    int64_t stage_layers = 0;
    for (int s = 0; s < layout->config().pp; ++s)
      stage_layers = std::max(stage_layers, layout->end_layer(s) - layout->first_layer(s));
    KVCacheShape rank_shape = model.kv_cache_shape(1, cfg.block_size);
    rank_shape.num_layers = stage_layers;
    rank_shape.num_kv_heads = layout->num_local_kv_heads();
    per_block = rank_shape.bytes_per_block();
  }
  // With an executor its cache decides (the GPU's memory plan): the pool mirrors it block for block.
  int64_t num_blocks = executor ? executor->num_kv_blocks() : cfg.num_kv_blocks;  // under a layout: per rank
  if (num_blocks <= 0) {
    num_blocks = cfg.kv_cache_memory_bytes / per_block;
    if (num_blocks < 2)
      return invalid_argument("--kv-cache-memory " + std::to_string(cfg.kv_cache_memory_bytes) +
                              " bytes holds no KV block (one block of " + std::to_string(cfg.block_size) +
                              " tokens takes " + std::to_string(per_block) + " bytes" +
                              (parallel ? " on one rank)" : ")"));
  }
  // Each rank holds ~1/(dcp·cp·kvp) of a request's tokens, so the scheduler's pool of
  // sequence blocks is that many times one rank's (block 0, the null block, once).
  const int64_t token_share = parallel ? int64_t{layout->config().dcp} * layout->config().cp * layout->config().kvp : 1;
  const int64_t rank_budget = num_blocks - 1;
  const int64_t pool_blocks = rank_budget * token_share + 1;
  if (pool_blocks > INT32_MAX)
    return invalid_argument("--kv-cache-memory: " + std::to_string(pool_blocks) + " KV blocks exceed the block pool's limit");
  if (parallel && cfg.enable_prefix_caching) {
    // The ranks' caches are per request (ShardedSequenceKV), so a shared prefix block of
    // the single-rank pool has no counterpart there yet.
    LCTX_LOG_INFO("prefix caching is off under the parallel layout {} (not supported yet)", layout->to_string());
    cfg.enable_prefix_caching = false;
  }
  auto hw = hardware_profile(cfg.hardware);
  if (!hw.is_ok()) return invalid_argument("--hardware: " + hw.status().message());
  auto cost = std::make_unique<RooflineCostModel>(
      model_shape(mc, static_cast<double>(dtype_size(model.weight_dtype()))), *hw);
  auto policy = make_policy(cfg.policy, cost.get(), cfg.deadlines);
  if (!policy.is_ok()) return policy.status();
  cfg.chunking.max_num_batched_tokens = cfg.scheduler.max_num_batched_tokens;
  if (cfg.adaptive_chunking) LONGCTX_RETURN_IF_ERROR(cfg.chunking.validate());
  // Under a layout (or on an executor's device) the KV lives there; the single-rank paged cache stays empty.
  std::unique_ptr<LLMEngine> e(new LLMEngine(
      model, tokenizer, cfg, model.kv_cache_shape(parallel || executor ? 0 : num_blocks, cfg.block_size)));
  e->executor_ = std::move(executor);
  e->cost_model_ = std::move(cost);
  e->layout_ = *layout;
  e->num_kv_blocks_ = pool_blocks;
  e->rank_block_budget_ = rank_budget;
  if (parallel) {
    ParallelRunnerOptions ro;
    ro.spp_chunk_tokens = cfg.spp_chunk_tokens;
    ro.blocks_per_rank = rank_budget;
    ro.threads_per_rank = cfg.threads_per_rank;
    auto runner = ParallelModelRunner::create(mc, model.weights(), e->layout_, ro);
    if (!runner.is_ok()) return runner.status();
    e->parallel_ = std::move(*runner);
  }
  std::vector<std::pair<std::string, int64_t>> labels = {
      {"tp", layout->config().tp},   {"pp", layout->config().pp},   {"cp", layout->config().cp},
      {"dcp", layout->config().dcp}, {"kvp", layout->config().kvp}, {"world", layout->world_size()}};
  e->metrics_.set_layout(std::move(labels), rank_budget);
  KVCacheConfig kvc;
  kvc.num_blocks = static_cast<int32_t>(pool_blocks);
  kvc.block_size = static_cast<int32_t>(cfg.block_size);
  kvc.enable_prefix_caching = cfg.enable_prefix_caching;
  e->kv_ = std::make_unique<KVCacheManager>(kvc);
  e->scheduler_ = std::make_unique<Scheduler>(e->cfg_.scheduler, *e->kv_, std::move(*policy));
  if (cfg.adaptive_chunking) {
    e->chunk_sizer_ = std::make_unique<AdaptiveChunkSizer>(*e->cost_model_, e->cfg_.chunking);
    e->scheduler_->set_chunk_sizer(e->chunk_sizer_.get());
  }
  for (int64_t id : mc.eos_token_ids) e->eos_ids_.push_back(static_cast<int32_t>(id));
  if (tokenizer && tokenizer->eos_token_id()) e->eos_ids_.push_back(*tokenizer->eos_token_id());
  if (!cfg.step_log_path.empty()) {
    auto log = StepLog::open(cfg.step_log_path);
    if (!log.is_ok()) return log.status();
    e->step_log_ = std::move(*log);
  }
  e->refresh_gauges();
  return e;
}

LLMEngine::~LLMEngine() = default;

double LLMEngine::now_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

Result<RequestId> LLMEngine::add_request(GenerationRequest req) {
  auto reject = [&](Status st) -> Result<RequestId> {
    metrics_.record_rejected();
    return st;
  };
  if (Status st = validate(req, cfg_.limits); !st.is_ok()) return reject(st);
  const int64_t vocab = model_.config().vocab_size;
  for (size_t i = 0; i < req.prompt_token_ids.size(); ++i) {
    const int32_t id = req.prompt_token_ids[i];
    if (id < 0 || id >= vocab)
      return reject(invalid_argument("prompt: token id " + std::to_string(id) + " at index " + std::to_string(i) +
                                     " is outside the vocabulary [0, " + std::to_string(vocab) + ")"));
  }
  if (!req.stop.empty() && !tokenizer_)
    return reject(invalid_argument("stop: stop strings need a tokenizer (served with --skip-tokenizer-init)"));
  if (parallel_ && parallel_->blocks_per_rank_budget() > 0) {
    const int64_t total = static_cast<int64_t>(req.prompt_token_ids.size()) + req.max_tokens;
    const int64_t need = parallel_->max_rank_blocks(total);
    if (need > parallel_->blocks_per_rank_budget())
      return reject(invalid_argument("prompt + max_tokens = " + std::to_string(total) + " tokens needs " +
                                     std::to_string(need) + " KV blocks on the most loaded rank of " +
                                     layout_.to_string() + " but a rank holds only " +
                                     std::to_string(parallel_->blocks_per_rank_budget()) +
                                     " (raise --kv-cache-memory)"));
  }
  int64_t waiting = scheduler_->num_waiting();
  for (const auto& [id, s] : sequences_) waiting += s->started ? 0 : 1;
  if (waiting + req.n > cfg_.max_waiting)
    return reject(Status(StatusCode::kResourceExhausted,
                         "the waiting queue is full (" + std::to_string(cfg_.max_waiting) + " requests); retry later"));

  const RequestId user_id = next_id_;
  auto params = std::make_shared<const GenerationRequest>(std::move(req));
  const double now = now_s();
  std::vector<std::unique_ptr<Sequence>> seqs;
  for (int64_t i = 0; i < params->n; ++i) {
    // Each continuation has its own random stream: the request's seed (or the engine's)
    // advanced by the continuation index, so seeded requests are reproducible.
    const uint64_t seed = params->sampling.seed.value_or(cfg_.seed + static_cast<uint64_t>(user_id)) + static_cast<uint64_t>(i);
    auto s = std::make_unique<Sequence>(params, seed);
    s->req.id = next_id_++;
    s->req.token_ids = params->prompt_token_ids;
    s->req.num_prompt_tokens = static_cast<int64_t>(params->prompt_token_ids.size());
    s->req.max_tokens = params->max_tokens;
    s->req.cache_salt = params->cache_salt;
    s->req.arrival_time_s = now;
    s->user_id = user_id;
    s->index = i;
    s->timings.arrival_s = now;
    s->timings.prompt_tokens = s->req.num_prompt_tokens;
    if (tokenizer_) s->detok.emplace(*tokenizer_, params->skip_special_tokens);
    seqs.push_back(std::move(s));
  }
  // The first continuation goes to the scheduler now (its admission check is the
  // request's); the others start once its prompt is in the cache, so they find the
  // prompt's full blocks there and share them instead of recomputing.
  if (Status st = scheduler_->add_request(&seqs.front()->req); !st.is_ok()) {
    next_id_ = user_id;
    return reject(st);
  }
  seqs.front()->started = true;
  for (auto& s : seqs) sequences_[s->req.id] = std::move(s);
  return user_id;
}

void LLMEngine::start_sequence(Sequence& s) {
  Status st = scheduler_->add_request(&s.req);
  if (!st.is_ok()) {  // cannot happen for a sibling of an admitted request; fail it loudly, not silently
    LCTX_LOG_ERROR("sequence {} of request {} was not admitted: {}", s.index, s.user_id, st.message());
    return;
  }
  s.started = true;
}

void LLMEngine::abort(RequestId id) {
  std::vector<RequestId> ids;
  for (const auto& [sid, s] : sequences_)
    if (s->user_id == id) ids.push_back(sid);
  for (RequestId sid : ids) finish_sequence(*sequences_.at(sid), "abort", pending_outputs_);
}

void LLMEngine::finish_sequence(Sequence& s, const std::string& reason, std::vector<RequestOutput>& outs) {
  const RequestId sid = s.req.id;
  if (s.started) scheduler_->finish(sid);
  if (parallel_) parallel_->release(sid);
  s.timings.finished_s = now_s();
  s.timings.generation_tokens = s.req.num_output_tokens();
  s.timings.cached_tokens = std::max<int64_t>(s.req.num_cached_tokens, 0);
  s.timings.preemptions = s.req.num_preemptions;
  metrics_.record_finished(s.timings, reason == "abort");
  // Find this step's output for the sequence, or add one.
  RequestOutput* out = nullptr;
  for (auto& o : outs)
    if (o.request_id == s.user_id && o.index == s.index) out = &o;
  if (!out) {
    outs.emplace_back();
    out = &outs.back();
    out->request_id = s.user_id;
    out->index = s.index;
    out->num_prompt_tokens = s.req.num_prompt_tokens;
    out->num_cached_tokens = s.timings.cached_tokens;
  }
  out->finished = true;
  if (out->finish_reason.empty()) out->finish_reason = reason;
  sequences_.erase(sid);
}

void LLMEngine::append_token(Sequence& s, int32_t token, const cpu::Sampler::Sample* sample, RequestOutput& out) {
  const GenerationRequest& p = *s.params;
  s.req.token_ids.push_back(token);
  out.new_token_ids.push_back(token);
  if (sample && p.sampling.logprobs >= 0) out.logprobs.push_back({token, sample->logprob, sample->top_logprobs});
  const double now = now_s();
  if (s.timings.first_token_s < 0) {
    s.timings.first_token_s = now;
  } else {
    s.timings.inter_token_s.push_back(now - s.timings.last_token_s);
  }
  s.timings.last_token_s = now;

  std::optional<std::string> stop_string;
  if (s.detok) stop_string = s.stop.append(s.detok->push(token));

  const bool is_eos = std::find(eos_ids_.begin(), eos_ids_.end(), token) != eos_ids_.end();
  const bool is_stop_token = std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), token) != p.stop_token_ids.end();
  if (is_stop_token) {
    out.finish_reason = "stop";
    out.stop_reason = token;
  } else if (is_eos && !p.ignore_eos) {
    out.finish_reason = "stop";
  } else if (stop_string) {
    out.finish_reason = "stop";
    out.stop_reason = *stop_string;
  } else if (s.req.num_output_tokens() >= p.max_tokens || s.req.num_tokens() >= cfg_.scheduler.max_model_len) {
    out.finish_reason = "length";
  }
  if (!out.finish_reason.empty() && s.detok) {
    if (!stop_string) {
      s.stop.append(s.detok->finish());  // bytes of an incomplete character, as U+FFFD
      s.stop.flush();
    }
  }
  if (s.detok) out.text += s.stop.take_ready();
}

std::vector<RequestOutput> LLMEngine::step() {
  std::vector<RequestOutput> outs = std::move(pending_outputs_);
  pending_outputs_.clear();

  // Siblings of an n > 1 request start once the first one's prompt is cached.
  for (auto& [sid, s] : sequences_) {
    if (s->started) continue;
    auto first = sequences_.find(sid - s->index);
    if (first == sequences_.end() || first->second->req.num_computed_tokens >= first->second->req.num_prompt_tokens)
      start_sequence(*s);
  }

  const double now = now_s();
  StepPlan plan = scheduler_->schedule(now);
  if (parallel_) fit_plan_to_ranks(plan, outs);
  for (RequestId id : plan.preempted) {
    metrics_.record_preemption();
    if (parallel_) parallel_->release(id);  // it recomputes from position 0 on every rank
  }
  if (!plan.empty()) {
    for (const ScheduledChunk& c : plan.chunks) {
      Sequence& s = *sequences_.at(c.request_id);
      if (s.timings.first_scheduled_s < 0) s.timings.first_scheduled_s = now;
    }
    auto wants_prompt_rows = [&](RequestId id) {
      const Sequence& s = *sequences_.at(id);
      return s.params->prompt_logprobs >= 0 && s.index == 0 && s.prompt_logprobs_done < s.req.num_prompt_tokens;
    };
    auto request = [&](RequestId id) -> const Request& { return sequences_.at(id)->req; };
    // What the executor may sample itself: no penalties, no banned tokens (min_tokens not yet
    // reached), no top-N logprobs — the steps that need no token history.
    auto device_sample = [&](RequestId id) -> std::optional<DeviceSampling> {
      const Sequence& s = *sequences_.at(id);
      const cpu::SamplingParams& sp = s.params->sampling;
      if (sp.repetition_penalty != 1.0f || sp.presence_penalty != 0.0f || sp.frequency_penalty != 0.0f ||
          sp.logprobs > 0)
        return std::nullopt;
      if (s.req.num_output_tokens() < s.params->min_tokens &&
          (!eos_ids_.empty() || !s.params->stop_token_ids.empty()))
        return std::nullopt;
      DeviceSampling d;
      d.temperature = sp.temperature;
      d.top_k = sp.top_k;
      d.top_p = sp.top_p;
      d.min_p = sp.min_p;
      d.seed = s.seed;
      d.offset = static_cast<uint64_t>(s.req.num_output_tokens());
      d.logprob = sp.logprobs == 0;
      return d;
    };
    auto logits = executor_   ? executor_->run(plan, request, wants_prompt_rows, device_sample)
                  : parallel_ ? parallel_->run(plan, request, wants_prompt_rows)
                              : runner_.run(plan, request, wants_prompt_rows, {});
    if (!logits.is_ok()) {
      // The model failed on this batch: its requests end with "abort"; others go on.
      LCTX_LOG_ERROR("step failed: {}", logits.status().to_string());
      for (const ScheduledChunk& c : plan.chunks)
        if (sequences_.count(c.request_id)) finish_sequence(*sequences_.at(c.request_id), "abort", outs);
    } else {
      scheduler_->on_step_done(plan);
      const int64_t vocab = model_.config().vocab_size;
      for (size_t ci = 0; ci < plan.chunks.size(); ++ci) {
        const ScheduledChunk& c = plan.chunks[ci];
        Sequence& s = *sequences_.at(c.request_id);
        const ChunkRows& rows = logits->rows[ci];
        float* base = rows.first_row >= 0 ? logits->logits.data<float>() + rows.first_row * vocab : nullptr;
        RequestOutput out;
        out.request_id = s.user_id;
        out.index = s.index;
        out.num_prompt_tokens = s.req.num_prompt_tokens;
        out.num_cached_tokens = std::max<int64_t>(s.req.num_cached_tokens, 0);
        if (rows.all_positions) {
          // Row i predicts the token at position start + i + 1.
          for (int64_t i = 0; i < c.num_tokens; ++i) {
            const int64_t pos = c.start + i + 1;
            if (pos != s.prompt_logprobs_done || pos >= s.req.num_prompt_tokens) continue;
            const int32_t tok = s.req.token_ids[static_cast<size_t>(pos)];
            auto lp = cpu::token_logprobs(base + i * vocab, vocab, tok, s.params->prompt_logprobs);
            s.prompt_logprobs.push_back(TokenLogprob{tok, lp.logprob, std::move(lp.top_logprobs)});
            s.prompt_logprobs_done = pos + 1;
          }
        }
        if (c.sample && rows.sampled_on_device) {
          cpu::Sampler::Sample sample;
          sample.token = rows.token;
          sample.logprob = rows.logprob;
          append_token(s, sample.token, &sample, out);
        } else if (c.sample) {
          float* row = base + (rows.num_rows - 1) * vocab;
          std::vector<int32_t> banned;
          if (s.req.num_output_tokens() < s.params->min_tokens) {
            banned = eos_ids_;
            banned.insert(banned.end(), s.params->stop_token_ids.begin(), s.params->stop_token_ids.end());
          }
          const std::span<const int32_t> all(s.req.token_ids);
          const auto sample = s.sampler.sample(row, vocab, all.first(static_cast<size_t>(s.req.num_prompt_tokens)),
                                               all.subspan(static_cast<size_t>(s.req.num_prompt_tokens)), banned);
          append_token(s, sample.token, &sample, out);
        }
        if (s.params->prompt_logprobs >= 0 && s.index == 0 && !s.prompt_logprobs_sent &&
            s.prompt_logprobs_done >= s.req.num_prompt_tokens) {
          std::vector<std::optional<TokenLogprob>> pl{std::nullopt};
          for (auto& lp : s.prompt_logprobs) pl.push_back(std::move(lp));
          out.prompt_logprobs = std::move(pl);
          s.prompt_logprobs_sent = true;
        }
        const bool done = !out.finish_reason.empty();
        const bool has_news = !out.new_token_ids.empty() || out.prompt_logprobs.has_value();
        if (has_news || done) outs.push_back(std::move(out));
        if (done) finish_sequence(s, outs.back().finish_reason, outs);
      }
    }
  }
  refresh_gauges();
  if (step_log_ && !plan.empty()) step_log_->record(plan, now, now_s() - now);
  return outs;
}

void LLMEngine::fit_plan_to_ranks(StepPlan& plan, std::vector<RequestOutput>& outs) {
  // The scheduler budgets sequence blocks; a rank's real share can be larger (KVP puts
  // every request's first shard on the first group; CP and DCP round per request). Until
  // every rank fits, the plan's last chunk (the lowest priority: newly admitted requests
  // come last) goes back to the waiting queue as a preemption would send it.
  for (Status st = parallel_->check_budget(plan); !st.is_ok() && !plan.chunks.empty();
       st = parallel_->check_budget(plan)) {
    const ScheduledChunk victim = plan.chunks.back();
    plan.chunks.pop_back();
    plan.num_batched_tokens -= victim.num_tokens;
    Sequence& s = *sequences_.at(victim.request_id);
    bool others_hold_kv = false;
    for (const auto& [id, other] : sequences_)
      others_hold_kv = others_hold_kv || (id != victim.request_id && other->started && other->req.num_computed_tokens > 0);
    if (plan.chunks.empty() && !others_hold_kv) {
      // Alone on the ranks and still too big: it can never run.
      LCTX_LOG_ERROR("request {} aborted: {}", s.user_id, st.message());
      finish_sequence(s, "abort", outs);
      break;
    }
    scheduler_->finish(s.req.id);
    parallel_->release(s.req.id);
    s.req.num_computed_tokens = 0;
    s.req.num_cached_tokens = -1;
    s.req.num_preemptions += 1;
    if (Status requeued = scheduler_->add_request(&s.req); !requeued.is_ok()) {
      finish_sequence(s, "abort", outs);
      continue;
    }
    plan.preempted.push_back(s.req.id);
  }
}

void LLMEngine::refresh_gauges() {
  metrics_.set_gauges(scheduler_->num_running(), scheduler_->num_waiting(), kv_->usage(),
                      kv_->prefix_cache_queried_tokens(), kv_->prefix_cache_hit_tokens());
  // Blocks each rank holds: the ranks' own counts, or the one pool's on a single rank.
  metrics_.set_rank_blocks(parallel_ ? parallel_->blocks_per_rank() : std::vector<int64_t>{kv_->num_used_blocks()});
}

}  // namespace longctx
