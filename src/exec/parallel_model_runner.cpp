#include "exec/parallel_model_runner.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <span>
#include <string>

namespace longctx {

Result<std::unique_ptr<ParallelModelRunner>> ParallelModelRunner::create(const ModelConfig& cfg,
                                                                         const DenseWeights& weights,
                                                                         const ParallelLayout& layout,
                                                                         const ParallelRunnerOptions& opts) {
  if (opts.spp_chunk_tokens < 0)
    return invalid_argument("--spp-chunk must be >= 0 tokens, got " + std::to_string(opts.spp_chunk_tokens));
  std::vector<ShardedDenseModel> models;
  models.reserve(static_cast<size_t>(layout.world_size()));
  for (int r = 0; r < layout.world_size(); ++r) {
    auto m = ShardedDenseModel::shard(cfg, weights, layout, r);
    if (!m.is_ok()) return m.status();
    models.push_back(std::move(*m));
  }
  return std::unique_ptr<ParallelModelRunner>(new ParallelModelRunner(layout, std::move(models), opts));
}

ParallelModelRunner::ParallelModelRunner(ParallelLayout layout, std::vector<ShardedDenseModel> models,
                                         const ParallelRunnerOptions& opts)
    : layout_(std::move(layout)), models_(std::move(models)), opts_(opts) {
  RankCoords last;
  last.pp = layout_.config().pp - 1;
  root_ = layout_.rank_of(last);
  const int n = layout_.world_size();
  world_ = std::make_unique<HostWorld>(n);
  results_.resize(static_cast<size_t>(n));
  steps_.resize(static_cast<size_t>(n));
  workers_.reserve(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) workers_.emplace_back([this, r] { worker_loop(r); });
}

ParallelModelRunner::~ParallelModelRunner() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ParallelModelRunner::worker_loop(int rank) {
  const int hw = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  // Each rank's OpenMP teams (and OpenBLAS) stay within its share of the cores.
  omp_set_num_threads(opts_.threads_per_rank > 0 ? opts_.threads_per_rank
                                                 : std::max(1, hw / layout_.world_size()));
  RankCommunicators comms;
  int64_t comms_generation = -1;
  int64_t seen = 0;
  const ShardedDenseModel& model = models_[static_cast<size_t>(rank)];
  for (;;) {
    HostWorld* world = nullptr;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return stop_ || job_seq_ != seen; });
      if (stop_) return;
      seen = job_seq_;
      if (comms_generation != world_generation_) {
        comms = RankCommunicators::host(*world_, layout_, rank);
        comms_generation = world_generation_;
      }
      world = world_.get();
    }
    RankResult& res = results_[static_cast<size_t>(rank)];
    std::vector<std::vector<ShardedStep>>& mbs = steps_[static_cast<size_t>(rank)];
    res = RankResult{};
    res.logits.resize(mbs.size());
    try {
      for (size_t mb = 0; mb < mbs.size(); ++mb) {
        if (observer_) observer_(rank, static_cast<int64_t>(mb), MicroBatchEvent::kBegin);
        auto out = model.forward(std::span<ShardedStep>(mbs[mb]), comms);
        if (!out.is_ok()) {
          res.status = out.status();
          break;
        }
        if (rank == root_) res.logits[mb] = std::move(*out);
        if (observer_) observer_(rank, static_cast<int64_t>(mb), MicroBatchEvent::kEnd);
      }
    } catch (const CommAborted&) {
      res.aborted = true;
      res.status = internal_error("aborted because another rank failed");
    } catch (const std::exception& e) {
      res.status = internal_error(e.what());
    }
    // A failing rank wakes everyone blocked on it, so the step ends instead of hanging.
    if (!res.status.is_ok() && !res.aborted) world->abort();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--pending_ == 0) done_cv_.notify_all();
    }
  }
}

std::vector<std::pair<int64_t, int64_t>> ParallelModelRunner::pieces(const ScheduledChunk& c) const {
  const bool spp = layout_.config().pp > 1 && opts_.spp_chunk_tokens > 0;
  const int64_t piece = spp && c.num_tokens > opts_.spp_chunk_tokens ? opts_.spp_chunk_tokens : c.num_tokens;
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t begin = 0; begin < c.num_tokens; begin += piece)
    out.emplace_back(begin, std::min(begin + piece, c.num_tokens));
  return out;
}

Status ParallelModelRunner::check_budget(const StepPlan& plan) const {
  if (opts_.blocks_per_rank <= 0) return Status::ok();
  const int64_t bs = layout_.config().block_size;
  for (int r = 0; r < world_size(); ++r) {
    // Tokens this rank holds per request after the step: its pieces applied in order to
    // what it holds now (nothing for a request that starts over at position 0).
    std::map<RequestId, int64_t> local;
    for (const auto& [id, kvs] : seqs_) local[id] = kvs[static_cast<size_t>(r)].num_local_tokens();
    for (const ScheduledChunk& c : plan.chunks) {
      int64_t& held = local[c.request_id];
      if (c.start == 0) held = 0;
      for (const auto& [begin, end] : pieces(c)) {
        const int64_t n = end - begin;
        for (int64_t i = 0; i < n; ++i) held += layout_.stores_new_token(r, i, n, c.start + begin) ? 1 : 0;
      }
    }
    int64_t blocks = 0;
    for (const auto& [id, tokens] : local) blocks += (tokens + bs - 1) / bs;
    if (blocks > opts_.blocks_per_rank)
      return Status(StatusCode::kResourceExhausted,
                    "rank " + std::to_string(r) + " would hold " + std::to_string(blocks) +
                        " KV blocks after this step, over its budget of " + std::to_string(opts_.blocks_per_rank) +
                        " (--kv-cache-memory per rank)");
  }
  return Status::ok();
}

int64_t ParallelModelRunner::max_rank_blocks(int64_t tokens) const {
  const int64_t bs = layout_.config().block_size;
  int64_t most = 0;
  for (int r = 0; r < world_size(); ++r) {
    int64_t held = 0;
    for (int64_t i = 0; i < tokens; ++i) held += layout_.stores_new_token(r, i, tokens, 0) ? 1 : 0;
    most = std::max(most, (held + bs - 1) / bs);
  }
  return most;
}

Result<StepLogits> ParallelModelRunner::run(const StepPlan& plan,
                                            const std::function<const Request&(RequestId)>& request,
                                            const std::function<bool(RequestId)>& all_positions) {
  const int n = world_size();
  const int64_t vocab = models_.front().config().vocab_size;
  LONGCTX_RETURN_IF_ERROR(check_budget(plan));

  // Where each piece's logits land: micro-batch, row in that micro-batch's logits, count.
  struct PieceRows {
    size_t mb;
    int64_t row, count;
  };
  std::vector<std::vector<PieceRows>> chunk_pieces(plan.chunks.size());
  std::vector<std::vector<ShardedStep>> mbs;  // rank-independent: kv filled per rank below
  std::vector<std::vector<RequestId>> mb_ids;
  std::vector<int64_t> mb_rows;  // logit rows so far per micro-batch

  // Caches first: a request new to the runner (or restarting at 0 after a preemption)
  // gets fresh shares on every rank; anything else must continue where its cache ends.
  for (const ScheduledChunk& c : plan.chunks) {
    auto it = seqs_.find(c.request_id);
    if (it != seqs_.end() && c.start == 0 && it->second.front().num_tokens() != 0) {
      seqs_.erase(it);
      it = seqs_.end();
    }
    if (it == seqs_.end()) {
      if (c.start != 0)
        return internal_error("request " + std::to_string(c.request_id) + " resumes at position " +
                              std::to_string(c.start) + " but no rank holds its KV (prefix caching is off under a layout)");
      std::vector<ShardedSequenceKV> kvs;
      kvs.reserve(static_cast<size_t>(n));
      for (int r = 0; r < n; ++r) kvs.push_back(models_[static_cast<size_t>(r)].new_kv(c.num_tokens));
      seqs_.emplace(c.request_id, std::move(kvs));
    } else if (it->second.front().num_tokens() != c.start) {
      return internal_error("request " + std::to_string(c.request_id) + " resumes at position " +
                            std::to_string(c.start) + " but its ranks hold " +
                            std::to_string(it->second.front().num_tokens()) + " tokens");
    }
  }

  for (size_t ci = 0; ci < plan.chunks.size(); ++ci) {
    const ScheduledChunk& c = plan.chunks[ci];
    const Request& r = request(c.request_id);
    const bool every_row = all_positions(c.request_id);
    const auto chunk_pieces_of = pieces(c);
    for (size_t j = 0; j < chunk_pieces_of.size(); ++j) {
      const int64_t begin = chunk_pieces_of[j].first, len = chunk_pieces_of[j].second - begin;
      const bool last = j + 1 == chunk_pieces_of.size();
      if (mbs.size() <= j) {
        mbs.emplace_back();
        mb_ids.emplace_back();
        mb_rows.push_back(0);
      }
      ShardedStep st;
      st.ids = std::span<const int32_t>(r.token_ids.data() + c.start + begin, static_cast<size_t>(len));
      if (every_row) {
        for (int64_t i = 0; i < len; ++i) st.logit_rows.push_back(i);
      } else if (c.sample && last) {
        st.logit_rows.push_back(len - 1);
      }
      const int64_t count = static_cast<int64_t>(st.logit_rows.size());
      if (count > 0) chunk_pieces[ci].push_back({j, mb_rows[j], count});
      mb_rows[j] += count;
      mbs[j].push_back(std::move(st));
      mb_ids[j].push_back(c.request_id);
    }
  }
  last_micro_batches_ = static_cast<int64_t>(mbs.size());

  // Every rank runs the same micro-batches, each with its own KV shares.
  std::vector<std::vector<std::vector<ShardedStep>>> per_rank(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) {
    per_rank[size_t(r)] = mbs;
    for (size_t mb = 0; mb < mbs.size(); ++mb)
      for (size_t s = 0; s < mbs[mb].size(); ++s)
        per_rank[size_t(r)][mb][s].kv = &seqs_.at(mb_ids[mb][s])[size_t(r)];
  }

  {
    std::unique_lock<std::mutex> lock(mu_);
    steps_ = std::move(per_rank);
    pending_ = n;
    ++job_seq_;
    work_cv_.notify_all();
    done_cv_.wait(lock, [&] { return pending_ == 0; });
  }

  // The failing rank's own error (lowest rank), not the others' CommAborted.
  Status failed;
  for (int r = 0; r < n && failed.is_ok(); ++r) {
    const RankResult& res = results_[size_t(r)];
    if (!res.status.is_ok() && !res.aborted)
      failed = Status(res.status.code(), "rank " + std::to_string(r) + ": " + res.status.message());
  }
  for (int r = 0; r < n && failed.is_ok(); ++r)
    if (!results_[size_t(r)].status.is_ok()) failed = results_[size_t(r)].status;
  if (!failed.is_ok()) {
    // The aborted world cannot be reused; the workers pick up the new one on their next
    // job. The step's requests are half-written on some ranks: drop their caches.
    std::lock_guard<std::mutex> lock(mu_);
    retired_worlds_.push_back(std::move(world_));
    world_ = std::make_unique<HostWorld>(n);
    ++world_generation_;
    for (const ScheduledChunk& c : plan.chunks) seqs_.erase(c.request_id);
    return failed;
  }

  StepLogits out;
  int64_t total = 0;
  for (const auto& pieces : chunk_pieces)
    for (const PieceRows& p : pieces) total += p.count;
  out.logits = Tensor::empty({total, vocab}, DType::kF32);
  int64_t at = 0;
  const RankResult& root = results_[size_t(root_)];
  for (size_t ci = 0; ci < plan.chunks.size(); ++ci) {
    ChunkRows rows;
    rows.all_positions = all_positions(plan.chunks[ci].request_id);
    if (!chunk_pieces[ci].empty()) rows.first_row = at;
    for (const PieceRows& p : chunk_pieces[ci]) {
      const Tensor& src = root.logits[p.mb];
      std::memcpy(out.logits.data<float>() + at * vocab, src.data<float>() + p.row * vocab,
                  static_cast<size_t>(p.count * vocab) * sizeof(float));
      at += p.count;
      rows.num_rows += p.count;
    }
    out.rows.push_back(rows);
  }
  return out;
}

void ParallelModelRunner::release(RequestId id) { seqs_.erase(id); }

std::vector<int64_t> ParallelModelRunner::blocks_per_rank() const {
  std::vector<int64_t> blocks(static_cast<size_t>(world_size()), 0);
  for (const auto& [id, kvs] : seqs_)
    for (size_t r = 0; r < kvs.size(); ++r) blocks[r] += kvs[r].num_local_blocks();
  return blocks;
}

std::vector<int64_t> ParallelModelRunner::request_blocks_per_rank(RequestId id) const {
  std::vector<int64_t> blocks;
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return blocks;
  for (const ShardedSequenceKV& kv : it->second) blocks.push_back(kv.num_local_blocks());
  return blocks;
}

}  // namespace longctx
