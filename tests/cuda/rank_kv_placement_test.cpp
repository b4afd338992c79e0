// RankKVPlacement (model_cuda/rank_kv_placement.h) against brute force over ParallelLayout's
// token placement: random DCP/KVP layouts and batches (prefill from 0 and chunks over a
// prefix); every rank's slots, key counts, local block tables and causal lengths. Host
// code only: runs without a GPU.
#include "model_cuda/rank_kv_placement.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "model/forward_batch.h"
#include "parallel/parallel_layout.h"

namespace longctx::cuda {
namespace {

struct Case {
  int tp, dcp, kvp;
  int64_t interleave, shard, bs;
};

TEST(RankKVPlacement, MatchesTheLayoutsTokenPlacement) {
  const std::vector<Case> cases = {{4, 2, 1, 1, 0, 16},  {4, 2, 1, 16, 0, 16}, {4, 2, 1, 32, 0, 16},
                                   {1, 1, 2, 1, 48, 16}, {2, 1, 3, 1, 16, 16}, {4, 2, 2, 1, 64, 16},
                                   {4, 4, 1, 1, 0, 8},   {8, 4, 2, 8, 24, 8},  {4, 2, 2, 32, 32, 16}};
  std::mt19937 rng(7);
  for (const Case& c : cases) {
    ParallelConfig pc;
    pc.tp = c.tp, pc.dcp = c.dcp, pc.kvp = c.kvp, pc.dcp_interleave = c.interleave;
    pc.kvp_shard_tokens = c.shard, pc.block_size = c.bs;
    LayoutModelDims dims;
    dims.num_heads = 8, dims.num_kv_heads = 1, dims.num_layers = 2;
    auto layout = ParallelLayout::create(pc, dims);
    ASSERT_TRUE(layout.is_ok()) << layout.status().to_string();
    const std::string name = layout->to_string();
    for (int trial = 0; trial < 20; ++trial) {
      // A batch of 1..4 sequences, each with a prefix of 0..300 tokens and 1..70 new ones,
      // over distinct random global block ids.
      ForwardBatch b;
      std::vector<int32_t> ids(2000);
      for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i + 1);
      std::shuffle(ids.begin(), ids.end(), rng);
      size_t next = 0;
      const int ns = 1 + static_cast<int>(rng() % 4);
      std::vector<int32_t> toks(100, 1);
      for (int s = 0; s < ns; ++s) {
        const int64_t start = rng() % 301, n = 1 + rng() % 70;
        std::vector<int32_t> table;
        for (int64_t k = 0; k * c.bs < start + n; ++k) table.push_back(ids[next++]);
        b.add_sequence(toks.data(), n, start, table, c.bs, true);
      }
      std::set<int64_t> all_slots;  // per (dcp, kvp) coordinate: no two tokens share a slot
      for (int rank = 0; rank < layout->world_size(); ++rank) {
        const RankCoords rc = layout->coords(rank);
        const RankKVPlacement p(*layout, rank, c.bs);
        const int64_t cbs = p.cache_block_size();
        EXPECT_EQ(cbs, c.dcp > 1 && c.interleave == 1 ? c.bs / c.dcp : c.bs) << name;
        ForwardBatch local;
        std::vector<int32_t> causal;
        p.localize(b, local, causal);
        ASSERT_EQ(local.slots.size(), b.slots.size());
        ASSERT_EQ(causal.size(), b.slots.size());
        for (int64_t s = 0; s < ns; ++s) {
          const int64_t ctx = b.context_lens[size_t(s)], q0 = b.q_begin[size_t(s)],
                        nq = b.q_begin[size_t(s) + 1] - q0;
          const auto mine = [&](int64_t pos) {
            return layout->dcp_rank_of_token(pos) == rc.dcp && layout->kvp_rank_of_token(pos) == rc.kvp;
          };
          // Brute force: the rank's positions in order; key j is the j-th.
          std::vector<int64_t> owned;
          for (int64_t pos = 0; pos < ctx; ++pos)
            if (mine(pos)) owned.push_back(pos);
          ASSERT_EQ(local.context_lens[size_t(s)], static_cast<int64_t>(owned.size())) << name;
          for (int64_t n = 0; n <= ctx; n += 7)
            EXPECT_EQ(p.keys_before(n), std::lower_bound(owned.begin(), owned.end(), n) - owned.begin())
                << name;
          const int32_t* tab = local.block_tables.data() + s * local.block_table_stride;
          ASSERT_LE(static_cast<int64_t>(owned.size()), local.block_table_stride * cbs) << name;
          for (int64_t i = 0; i < nq; ++i) {
            const int64_t pos = ctx - nq + i, tok = q0 + i;
            const int64_t visible = std::upper_bound(owned.begin(), owned.end(), pos) - owned.begin();
            EXPECT_EQ(causal[size_t(tok)], visible) << name << " pos " << pos;
            const int64_t slot = local.slots[size_t(tok)];
            if (!mine(pos)) {
              EXPECT_EQ(slot, -1) << name << " pos " << pos;
              continue;
            }
            // Written where the attention reads local key j = visible − 1.
            const int64_t j = visible - 1;
            EXPECT_EQ(slot, int64_t{tab[j / cbs]} * cbs + j % cbs) << name << " pos " << pos;
            EXPECT_LT(slot, 2001 * cbs);
            if (rc.tp < c.dcp) {  // one rank per (dcp, kvp) coordinate
              EXPECT_TRUE(all_slots.insert(slot + (int64_t{rc.kvp} * c.dcp + rc.dcp) * 2001 * cbs).second)
                  << name << " slot " << slot << " used twice";
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace longctx::cuda
