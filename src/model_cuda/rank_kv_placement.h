// Where one rank of a layout keeps its share of every sequence's KV on the GPU under DCP
// and KVP, and the step metadata its kernels run on (decides; never computes). The engine
// hands every rank the same ForwardBatch, whose block tables hold global block ids of
// `block_size` tokens; the token placement is ParallelLayout's (DESIGN.md §3): token p on
// KVP group min(p / kvp_shard_tokens, kvp − 1) and, inside its TP group, DCP rank
// (p / dcp_interleave) mod dcp.
//
// The rank's cache is indexed by the same global block ids:
//  - DCP with --dcp-interleave 1: a global block's bs tokens are split over the dcp ranks,
//    so each rank's block holds bs / dcp slots (token p at offset (p mod bs) / dcp) — a
//    cache of num_blocks × bs / dcp slots, 1/dcp of the single-GPU one. dcp must divide bs.
//  - KVP, and DCP with an interleave of whole blocks: every global block lies on one rank,
//    which keeps it whole (bs slots); the rank's cache is as large as the engine's pool and
//    only its blocks are written (a limitation: docs/cuda.md, "Layouts on the GPU").
//  - CP (context_parallel.h): position p on CP rank p mod cp, placed as DCP with interleave 1.
// A rank's keys of a sequence are its tokens in position order, key j at entry j / cache_bs
// of its local block table (the owned entries of the global one) — what paged attention
// reads, with `causal_lens` masking by position since key indices are not positions.
#pragma once

#include <cstdint>
#include <vector>

#include "model/forward_batch.h"
#include "parallel/parallel_layout.h"

namespace longctx::cuda {

class RankKVPlacement {
 public:
  // The layout has been validated (CudaDenseModel's check_rank_spec: dcp divides block_size
  // when the interleave is 1).
  RankKVPlacement(const ParallelLayout& layout, int rank, int64_t block_size);

  // Whether the rank holds only a share of the tokens (dcp, kvp or cp > 1).
  bool shards_keys() const { return dcp_ > 1 || kvp_ > 1; }
  // Slots per global block id in this rank's cache.
  int64_t cache_block_size() const { return cache_bs_; }
  bool owns(int64_t pos) const;
  // This rank's tokens among positions [0, n).
  int64_t keys_before(int64_t n) const;

  // The engine's batch as this rank runs it: the same tokens, positions, q_begin and logit
  // rows; slots in this rank's cache (−1 for tokens kept elsewhere); context_lens = the
  // rank's keys of each sequence after the step; block tables of its blocks; and per new
  // token the number of the rank's keys at or before its position (causal_lens).
  void localize(const ForwardBatch& global, ForwardBatch& local, std::vector<int32_t>& causal_lens) const;

 private:
  bool owns_block(int64_t index) const;  // entry `index` of a sequence's global block table

  int64_t bs_ = 16, cache_bs_ = 16;
  int dcp_ = 1, dcp_rank_ = 0, kvp_ = 1, kvp_rank_ = 0;
  int64_t interleave_ = 1, shard_ = 0;
};

}  // namespace longctx::cuda
