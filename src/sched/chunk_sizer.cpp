#include "sched/chunk_sizer.h"

#include <algorithm>
#include <string>

namespace longctx {

std::vector<ChunkWork> step_work(const StepPlan& plan) {
  std::vector<ChunkWork> w;
  w.reserve(plan.chunks.size() + 1);
  for (const ScheduledChunk& c : plan.chunks) w.push_back({c.start, c.num_tokens});
  return w;
}

Status AdaptiveChunkConfig::validate() const {
  if (!(tbt_slo_s > 0))
    return invalid_argument("--tbt-slo must be > 0 seconds, got " + std::to_string(tbt_slo_s));
  if (min_chunk < 1) return invalid_argument("--min-chunk must be >= 1, got " + std::to_string(min_chunk));
  if (!(long_prefill_share > 0 && long_prefill_share <= 1))
    return invalid_argument("--long-prefill-share must be in (0, 1], got " +
                            std::to_string(long_prefill_share));
  if (max_num_batched_tokens < 1) return invalid_argument("--max-num-batched-tokens must be >= 1");
  return Status::ok();
}

int64_t AdaptiveChunkSizer::chunk_tokens(const Request& r, int64_t start, int64_t max_tokens,
                                         const StepPlan& plan) const {
  if (max_tokens <= 1) return std::max<int64_t>(max_tokens, 1);
  const int64_t threshold =
      cfg_.long_prefill_threshold > 0 ? cfg_.long_prefill_threshold : cfg_.max_num_batched_tokens;
  int64_t hi = max_tokens;
  if (r.num_prompt_tokens > threshold)
    hi = std::min(
        hi, std::max<int64_t>(1, static_cast<int64_t>(cfg_.long_prefill_share *
                                                      static_cast<double>(cfg_.max_num_batched_tokens))));
  const int64_t floor = std::min(cfg_.min_chunk, max_tokens);
  hi = std::max(hi, floor);

  const std::vector<ChunkWork> work = step_work(plan);
  const auto price = cost_.pricer(work);  // the plan's chunks summed once
  // A decode's token leaves a pipeline after every stage ran: its TBT is stages × the
  // step (stage) time.
  const double stages = static_cast<double>(cost_.pipeline_stages());
  auto fits = [&](int64_t n) { return price(ChunkWork{start, n}) * stages <= cfg_.tbt_slo_s; };
  if (fits(hi)) return hi;
  if (!fits(floor)) return floor;
  // Invariant: fits(lo), !fits(hi).
  int64_t lo = floor;
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (fits(mid) ? lo : hi) = mid;
  }
  return lo;
}

}  // namespace longctx
