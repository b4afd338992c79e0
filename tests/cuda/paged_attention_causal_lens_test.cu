// Paged attention with PagedAttentionParams::causal_lens — a rank's share of a sequence's keys
// (DCP, KVP), where query i sees keys 0..causal_lens[i]−1 rather than the keys up to its own
// index — against a float64 reference from the same bf16 inputs (bounds of attention_test.cu).
// The lengths come from a DCP-style placement (the rank's keys at or before each query's
// position), so some rows see no key at all (−inf, out 0). Head dim 128 prefill would run on
// the Hopper kernel without causal_lens: this checks the dispatch keeps it on the portable one.
#include <algorithm>
#include <cmath>
#include <string>

#include "cuda/paged_attention_harness.h"

namespace longctx::cuda::test {
namespace {

constexpr double kOutBound = 1e-2;
constexpr double kLseBound = 2e-3;
constexpr PagedLayout kLayout{/*spare_table_entries=*/2, /*spare_blocks=*/5, /*fp32_scale=*/true};

struct LensCase {
  std::string name;
  int64_t hq, hkv, d, block_size;
  std::vector<int64_t> ctx, nq;  // the rank's keys and the step's queries, per sequence
  int64_t every = 2;             // the rank holds every `every`-th position (dcp)
  int64_t partition = 0;
};

// Float64 attention where query t sees keys [0, lens[t]).
void reference(const PagedBatch& b, const std::vector<int32_t>& lens, std::vector<double>& out,
               std::vector<double>& lse) {
  const PagedShape& c = b.shape;
  const int64_t G = c.hq / c.hkv, width = c.hkv * c.d;
  out.assign(b.total_q * c.hq * c.d, 0.0);
  lse.assign(b.total_q * c.hq, -INFINITY);
  std::vector<int64_t> seq_of(b.total_q);
  for (size_t s = 0; s + 1 < b.q_begin.size(); ++s)
    for (int64_t t = b.q_begin[s]; t < b.q_begin[s + 1]; ++t) seq_of[t] = static_cast<int64_t>(s);
  parallel_for(b.total_q * c.hq, [&](int64_t th) {
    const int64_t t = th / c.hq, h = th % c.hq, kh = h / G, s = seq_of[t], hi = lens[t];
    if (hi <= 0) return;
    std::vector<double> sc(hi);
    double mx = -INFINITY;
    for (int64_t p = 0; p < hi; ++p) {
      double dot = 0;
      for (int64_t j = 0; j < c.d; ++j)
        dot += static_cast<double>(bf16_to_f32(b.q[(t * c.hq + h) * c.d + j])) *
               bf16_to_f32(b.kc[b.slot(s, p) * width + kh * c.d + j]);
      sc[p] = dot * b.scale;
      mx = std::max(mx, sc[p]);
    }
    double sum = 0;
    for (auto& x : sc) sum += (x = std::exp(x - mx));
    double* o = &out[(t * c.hq + h) * c.d];
    for (int64_t p = 0; p < hi; ++p)
      for (int64_t j = 0; j < c.d; ++j)
        o[j] += sc[p] / sum * bf16_to_f32(b.vc[b.slot(s, p) * width + kh * c.d + j]);
    lse[t * c.hq + h] = mx + std::log(sum);
  });
}

class PagedAttentionCausalLens : public ::testing::TestWithParam<LensCase> {};

TEST_P(PagedAttentionCausalLens, MatchesFloat64Reference) {
  const LensCase& c = GetParam();
  Rng rng;
  SCOPED_TRACE("seed " + std::to_string(rng.seed));
  PagedBatch b(PagedShape{c.hq, c.hkv, c.d, c.block_size, c.ctx, c.nq, true, c.partition}, kLayout, rng);
  // The rank is member 1 of `every`: it holds positions 1, 1 + every, …; its k-th key is at
  // position 1 + k·every, and the sequence's n = every·ctx + 1 tokens end with the step's
  // queries at n − nq .. n − 1, each seeing the keys at or before it (non-decreasing).
  std::vector<int32_t> lens(b.total_q);
  int64_t zero_rows = 0;
  for (size_t s = 0; s < c.ctx.size(); ++s) {
    const int64_t n = c.every * c.ctx[s] + 1;
    for (int64_t i = 0; i < c.nq[s]; ++i) {
      const int64_t pos = n - c.nq[s] + i;
      const int64_t visible = pos >= 1 ? std::min<int64_t>(c.ctx[s], (pos - 1) / c.every + 1) : 0;
      lens[b.q_begin[s] + i] = static_cast<int32_t>(visible);
      zero_rows += visible == 0;
    }
  }
  DeviceBatch d(b);
  DeviceBuffer<int32_t> dl(lens);
  PagedAttentionParams p = make_params(b, d);
  p.causal_lens = dl.get();
  ASSERT_NO_FATAL_FAILURE(run_paged_attention(p, b.total_q));
  std::vector<double> ref, ref_lse;
  reference(b, lens, ref, ref_lse);
  const std::vector<uint16_t> out = d.out.download();
  const double err = rel_error(out, ref);
  EXPECT_LE(err, kOutBound);
  expect_lse_near(d.lse.download(), ref_lse, kLseBound);
  // Where the lengths differ from the key-index mask's (prefill, chunks; not decode, where a
  // rank's query sees all its keys), that mask must fail this reference: the case tells.
  bool differs = false;
  for (size_t s = 0; s < c.ctx.size(); ++s)
    for (int64_t i = 0; i < c.nq[s]; ++i)
      differs |= lens[b.q_begin[s] + i] != std::clamp<int64_t>(c.ctx[s] - c.nq[s] + i + 1, 0, c.ctx[s]);
  if (differs) {
    PagedAttentionParams plain = make_params(b, d);
    ASSERT_NO_FATAL_FAILURE(run_paged_attention(plain, b.total_q));
    EXPECT_GT(rel_error(d.out.download(), ref), 2 * kOutBound) << "the case does not exercise causal_lens";
  }
  RecordProperty("rel_error", std::to_string(err));
  RecordProperty("rows_without_keys", std::to_string(zero_rows));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, PagedAttentionCausalLens,
    ::testing::Values(
        // A whole prompt of 2·ctx + 1 tokens on DCP member 1 of 2 (its first query sees nothing).
        // (Block 16, keys ≤ 256: without causal_lens the Hopper kernel would take this one.)
        LensCase{"PrefillDcp2D128", 8, 1, 128, 16, {250, 77}, {501, 155}},
        LensCase{"PrefillSplitDcp2D128", 8, 1, 128, 8, {300, 77}, {601, 155}},
        LensCase{"PrefillDcp2D64", 8, 1, 64, 8, {150}, {301}},
        LensCase{"PrefillDcp4D32Block4", 8, 2, 32, 4, {90, 33}, {361, 133}, 4},
        // A chunk over a prefix, and a forced key split (several partitions merged).
        LensCase{"ChunkDcp2D64", 8, 1, 64, 8, {500, 260}, {37, 13}},
        LensCase{"ChunkSplitDcp2D128", 8, 1, 128, 8, {700}, {200}, 2, 128},
        // Decode: one query per sequence seeing all the rank's keys.
        LensCase{"DecodeDcp2D128", 8, 1, 128, 8, {1000, 3, 64}, {1, 1, 1}}),
    [](const ::testing::TestParamInfo<LensCase>& i) { return i.param.name; });

}  // namespace
}  // namespace longctx::cuda::test
