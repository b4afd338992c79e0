#include "model_cuda/rank_kv_placement.h"

#include <algorithm>

namespace longctx::cuda {

RankKVPlacement::RankKVPlacement(const ParallelLayout& layout, int rank, int64_t block_size)
    : bs_(block_size), cache_bs_(block_size) {
  const ParallelConfig& pc = layout.config();
  const RankCoords c = layout.coords(rank);
  dcp_ = pc.dcp, dcp_rank_ = c.dcp, kvp_ = pc.kvp, kvp_rank_ = c.kvp;
  interleave_ = pc.dcp_interleave, shard_ = pc.kvp_shard_tokens;
  // CP (alone: the GPU model does not combine it with DCP or KVP yet) keeps position p on CP
  // rank p mod cp, as DCP with interleave 1 does over its group (context_parallel.h).
  if (pc.cp > 1) dcp_ = pc.cp, dcp_rank_ = c.cp, interleave_ = 1;
  if (dcp_ > 1 && interleave_ == 1) cache_bs_ = bs_ / dcp_;
}

bool RankKVPlacement::owns(int64_t pos) const {
  const int g = kvp_ == 1 ? 0 : static_cast<int>(std::min<int64_t>(pos / shard_, kvp_ - 1));
  return g == kvp_rank_ && (pos / interleave_) % dcp_ == dcp_rank_;
}

bool RankKVPlacement::owns_block(int64_t index) const {
  // A KVP shard and a DCP interleave > 1 are whole blocks; with interleave 1 every block
  // holds some of the rank's tokens.
  const int64_t first = index * bs_;
  const int g = kvp_ == 1 ? 0 : static_cast<int>(std::min<int64_t>(first / shard_, kvp_ - 1));
  if (g != kvp_rank_) return false;
  return cache_bs_ != bs_ || dcp_ == 1 || (first / interleave_) % dcp_ == dcp_rank_;
}

int64_t RankKVPlacement::keys_before(int64_t n) const {
  // Positions [lo, hi) are the rank's KVP shard; inside it every dcp·interleave positions
  // hold `interleave` of the rank's, starting at dcp_rank · interleave.
  const int64_t lo = kvp_ == 1 ? 0 : kvp_rank_ * shard_;
  const int64_t hi = kvp_ == 1 || kvp_rank_ == kvp_ - 1 ? n : std::min(n, lo + shard_);
  if (hi <= lo) return 0;
  const int64_t period = interleave_ * dcp_;
  auto dcp_count = [&](int64_t x) {
    return x / period * interleave_ +
           std::clamp<int64_t>(x % period - dcp_rank_ * interleave_, 0, interleave_);
  };
  return dcp_count(hi) - dcp_count(lo);
}

void RankKVPlacement::localize(const ForwardBatch& g, ForwardBatch& local,
                               std::vector<int32_t>& causal_lens) const {
  const int64_t ns = g.num_seqs(), t = g.num_tokens();
  local.token_ids = g.token_ids;
  local.positions = g.positions;
  local.q_begin = g.q_begin;
  local.logit_rows = g.logit_rows;
  local.slots.assign(static_cast<size_t>(t), -1);
  local.context_lens.resize(static_cast<size_t>(ns));
  causal_lens.resize(static_cast<size_t>(t));
  // Local tables: the owned entries of each global table, padded to the longest.
  std::vector<std::vector<int32_t>> tables(static_cast<size_t>(ns));
  int64_t stride = 0;
  for (int64_t s = 0; s < ns; ++s) {
    const int64_t ctx = g.context_lens[static_cast<size_t>(s)];
    const int32_t* row = g.block_tables.data() + s * g.block_table_stride;
    std::vector<int32_t>& tab = tables[static_cast<size_t>(s)];
    for (int64_t k = 0; k * bs_ < ctx; ++k)
      if (owns_block(k)) tab.push_back(row[k]);
    stride = std::max(stride, static_cast<int64_t>(tab.size()));
    local.context_lens[static_cast<size_t>(s)] = keys_before(ctx);
    const int64_t q0 = g.q_begin[static_cast<size_t>(s)], nq = g.q_begin[static_cast<size_t>(s) + 1] - q0;
    for (int64_t i = 0; i < nq; ++i) {
      const int64_t pos = ctx - nq + i, tok = q0 + i;
      causal_lens[static_cast<size_t>(tok)] = static_cast<int32_t>(keys_before(pos + 1));
      if (!owns(pos)) continue;
      const int64_t off = cache_bs_ == bs_ ? pos % bs_ : (pos % bs_) / dcp_;
      local.slots[static_cast<size_t>(tok)] = int64_t{row[pos / bs_]} * cache_bs_ + off;
    }
  }
  local.block_table_stride = stride;
  local.block_tables.assign(static_cast<size_t>(ns * stride), 0);
  for (int64_t s = 0; s < ns; ++s)
    std::copy(tables[static_cast<size_t>(s)].begin(), tables[static_cast<size_t>(s)].end(),
              local.block_tables.begin() + s * stride);
}

}  // namespace longctx::cuda
