// The Hopper (wgmma) prefill kernel, src/ops/cuda/paged_prefill_sm90.cu, against a float64
// reference from the same bf16 inputs, called directly (with its K/V tiles by TMA where the
// block size allows, and by cp.async alone) and through paged_attention()'s dispatch; the
// portable kernel (LONGCTX_ATTN_SM90=0) on the same inputs beside it.
//   out: ‖out − ref‖/‖ref‖ ≤ 1e-2 for EACH sequence (P is rounded to bf16 for P·V, out is bf16);
//   lse: max |lse − ref| ≤ 2e-3; rows with no visible key exactly −inf.
// Outputs start poisoned (NaN); cache slots outside every context are NaN and unused
// block-table entries point at the NaN null block 0, so a read past a context shows. Blocks
// are shuffled (every K/V tile by boxes of one block), and in BlocksInOrderLoadWholeTiles in
// table order with gaps (whole-tile boxes where a tile's blocks are back to back).
// Skipped on a device that is not compute capability 9.0 (the kernel does not run there).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "cuda/paged_attention_harness.h"
#include "ops/cuda/paged_prefill_sm90.h"

namespace longctx::cuda::test {
namespace {

constexpr double kOutBound = 1e-2;
constexpr double kLseBound = 2e-3;

struct Sm90Case {
  std::string name;
  int64_t hq, hkv, block_size;
  std::vector<int64_t> ctx, nq;
  bool causal = true;
  int64_t d = 128;
  PagedShape shape() const { return {hq, hkv, d, block_size, ctx, nq, causal}; }
};

// Which blocks the sequences get, and the exact 1/√d in the reference.
constexpr PagedLayout kLayout{/*spare_table_entries=*/3, /*spare_blocks=*/7, /*fp32_scale=*/false};

bool device_is_sm90() {
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
  return major == 9 && minor == 0;
}

// Each sequence's rows against the reference, and the LSE of every row.
void expect_matches(const PagedBatch& b, const DeviceBatch& d, const std::vector<double>& ref,
                    const std::vector<double>& ref_lse, const std::string& what) {
  SCOPED_TRACE(what);
  const auto out = d.out.download();
  const auto lse = d.lse.download();
  const int64_t row = b.shape.hq * b.shape.d;
  for (size_t s = 0; s + 1 < b.q_begin.size(); ++s) {
    const int64_t lo = b.q_begin[s] * row, hi = b.q_begin[s + 1] * row;
    if (hi == lo) continue;
    const std::vector<uint16_t> o(out.begin() + lo, out.begin() + hi);
    const std::vector<double> r(ref.begin() + lo, ref.begin() + hi);
    const double err = rel_error(o, r);
    EXPECT_LE(err, kOutBound) << "sequence " << s;
  }
  expect_lse_near(lse, ref_lse, kLseBound);
}

// Sets LONGCTX_ATTN_SM90 for the scope of one call (the dispatch reads it on every call).
struct Sm90Switch {
  explicit Sm90Switch(bool on) { setenv("LONGCTX_ATTN_SM90", on ? "1" : "0", 1); }
  ~Sm90Switch() { unsetenv("LONGCTX_ATTN_SM90"); }
};

class PrefillSm90Test : public ::testing::TestWithParam<Sm90Case> {};

TEST_P(PrefillSm90Test, MatchesFloat64Reference) {
  if (!device_is_sm90()) GTEST_SKIP() << "not a compute capability 9.0 device";
  const Sm90Case& c = GetParam();
  Rng rng;
  SCOPED_TRACE("seed " + std::to_string(rng.seed));
  PagedBatch b(c.shape(), kLayout, rng);
  std::vector<double> ref, ref_lse;
  b.reference(ref, ref_lse);

  // The kernel itself.
  DeviceBatch direct(b);
  const PagedAttentionParams p = make_params(b, direct);
  // The dispatch takes block sizes that are multiples of 16 (whole tiles by TMA); the kernel
  // itself runs any block size.
  EXPECT_EQ(paged_prefill_sm90_eligible(p), c.block_size % 16 == 0);
  LAUNCH_OK(paged_prefill_sm90(p, b.total_q, nullptr));
  expect_matches(b, direct, ref, ref_lse, "paged_prefill_sm90");
  if (c.block_size % 16 == 0) {  // the TMA path was taken for whole tiles: cp.async for all too
    DeviceBatch no_tma(b);
    setenv("LONGCTX_ATTN_SM90_TMA", "0", 1);
    const cudaError_t e = paged_prefill_sm90(make_params(b, no_tma), b.total_q, nullptr);
    unsetenv("LONGCTX_ATTN_SM90_TMA");
    LAUNCH_OK(e);
    expect_matches(b, no_tma, ref, ref_lse, "paged_prefill_sm90, LONGCTX_ATTN_SM90_TMA=0");
  }

  // Three stages (LONGCTX_ATTN_SM90_STAGES=3) on the same inputs.
  {
    DeviceBatch three(b);
    setenv("LONGCTX_ATTN_SM90_STAGES", "3", 1);
    const cudaError_t e = paged_prefill_sm90(make_params(b, three), b.total_q, nullptr);
    unsetenv("LONGCTX_ATTN_SM90_STAGES");
    LAUNCH_OK(e);
    expect_matches(b, three, ref, ref_lse, "paged_prefill_sm90, 3 stages");
  }

  // Through paged_attention (the Hopper kernel where eligible, else the portable one), then
  // with the switch off: the portable kernel on the same inputs.
  DeviceBatch dispatched(b), portable(b);
  run_paged_attention(make_params(b, dispatched), b.total_q);
  expect_matches(b, dispatched, ref, ref_lse, "paged_attention");
  {
    Sm90Switch off(false);
    ASSERT_FALSE(paged_prefill_sm90_eligible(make_params(b, portable)));
    run_paged_attention(make_params(b, portable), b.total_q);
  }
  expect_matches(b, portable, ref, ref_lse, "paged_attention, LONGCTX_ATTN_SM90=0");
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, PrefillSm90Test,
    ::testing::Values(
        // Whole prompts of different lengths in one launch (none a multiple of the 128-key tile
        // or of the block size), GQA group 4.
        Sm90Case{"PromptsGqa4", 32, 8, 16, {1000, 37, 300, 515}, {1000, 37, 300, 515}},
        // Chunks over cached prefixes that are not multiples of the block size or tile; a
        // sequence with no new token and one with a single token in the same launch.
        Sm90Case{"ChunksOverPrefixGqa4", 32, 8, 16, {1337, 700, 259, 90, 64}, {300, 129, 1, 0, 64}},
        // GQA group 1 (MHA), 8 and MQA (group 16: a row tile spans 8 tokens).
        Sm90Case{"ChunkMhaBlock5", 8, 8, 5, {777, 130}, {200, 130}},
        Sm90Case{"PromptGqa8Block32", 32, 4, 32, {640, 129}, {640, 129}},
        Sm90Case{"ChunkMqa16Block7", 16, 1, 7, {1500, 255}, {333, 255}},
        // Block size 1 and a large block (64), whole and chunked.
        Sm90Case{"Block1", 8, 2, 1, {300, 257}, {300, 100}},
        Sm90Case{"Block64", 16, 4, 64, {1030, 128}, {513, 128}},
        // A longer prompt: many row tiles per sequence and many key tiles per row tile.
        Sm90Case{"Prompt2049Gqa4", 32, 8, 16, {2049}, {2049}},
        // Not causal: every key visible to every query.
        Sm90Case{"NonCausalChunks", 16, 4, 16, {600, 45}, {77, 45}, false}),
    [](const ::testing::TestParamInfo<Sm90Case>& i) { return i.param.name; });

// Gives the batch's sequences blocks in table order (ids 1, 2, 3, …) with a few ids skipped,
// as a fresh engine lays out a long prompt, and moves the cached K/V to the new slots: tiles
// of 128 keys whose blocks are back to back are loaded as one box per column half; the tiles
// around a skipped id (the skipped block is NaN) are not.
void lay_blocks_in_order(PagedBatch& b, Rng& rng, int64_t spare_blocks) {
  const PagedShape& c = b.shape;
  const int64_t width = c.hkv * c.d, ns = static_cast<int64_t>(c.ctx.size());
  std::vector<int32_t> tables(b.tables.size(), 0);
  int32_t next = 1;
  int64_t skipped = 0;
  for (int64_t s = 0; s < ns; ++s)
    for (int64_t blk = 0; blk < (c.ctx[s] + c.block_size - 1) / c.block_size; ++blk) {
      if (blk > 0 && skipped < spare_blocks && rng.gen() % 23 == 0) ++next, ++skipped;
      tables[s * b.stride + blk] = next++;
    }
  std::vector<uint16_t> kc(b.kc.size(), 0xffff), vc(b.vc.size(), 0xffff);
  for (int64_t s = 0; s < ns; ++s)
    for (int64_t pos = 0; pos < c.ctx[s]; ++pos) {
      const int64_t from = b.slot(s, pos);
      const int64_t to = tables[s * b.stride + pos / c.block_size] * c.block_size + pos % c.block_size;
      std::copy_n(b.kc.begin() + from * width, width, kc.begin() + to * width);
      std::copy_n(b.vc.begin() + from * width, width, vc.begin() + to * width);
    }
  b.tables = std::move(tables);
  b.kc = std::move(kc);
  b.vc = std::move(vc);
}

TEST(PrefillSm90, BlocksInOrderLoadWholeTiles) {
  if (!device_is_sm90()) GTEST_SKIP() << "not a compute capability 9.0 device";
  const Sm90Case cases[] = {Sm90Case{"Block16", 32, 8, 16, {1337, 700, 259}, {300, 700, 1}},
                            Sm90Case{"Block32", 16, 4, 32, {1500, 640}, {333, 640}},
                            Sm90Case{"Block64", 16, 4, 64, {1030, 300}, {513, 300}}};
  for (const Sm90Case& c : cases) {
    Rng rng;
    SCOPED_TRACE(c.name + ", seed " + std::to_string(rng.seed));
    PagedBatch b(c.shape(), kLayout, rng);
    lay_blocks_in_order(b, rng, kLayout.spare_blocks);
    std::vector<double> ref, ref_lse;
    b.reference(ref, ref_lse);
    DeviceBatch whole(b), dispatched(b), boxes(b);
    LAUNCH_OK(paged_prefill_sm90(make_params(b, whole), b.total_q, nullptr));
    expect_matches(b, whole, ref, ref_lse, "whole-tile boxes");
    run_paged_attention(make_params(b, dispatched), b.total_q);
    expect_matches(b, dispatched, ref, ref_lse, "paged_attention");
    setenv("LONGCTX_ATTN_SM90_TILE_BOX", "0", 1);
    const cudaError_t e = paged_prefill_sm90(make_params(b, boxes), b.total_q, nullptr);
    unsetenv("LONGCTX_ATTN_SM90_TILE_BOX");
    LAUNCH_OK(e);
    expect_matches(b, boxes, ref, ref_lse, "LONGCTX_ATTN_SM90_TILE_BOX=0");
  }
}

TEST(PrefillSm90, NotEligibleForDecodeOrOtherHeadDims) {
  PagedAttentionParams p;
  p.num_seqs = 1;
  p.num_q_heads = 8;
  p.num_kv_heads = 2;
  p.head_dim = 128;
  p.max_num_q = 1;  // decode shape
  p.max_context_len = 100;
  EXPECT_FALSE(paged_prefill_sm90_eligible(p));
  p.max_num_q = 64;
  p.head_dim = 64;
  EXPECT_FALSE(paged_prefill_sm90_eligible(p));
  p.head_dim = 128;
  p.block_size = 16;
  EXPECT_EQ(paged_prefill_sm90_eligible(p), device_is_sm90());
  p.block_size = 8;  // not a multiple of 16: the portable kernel
  EXPECT_FALSE(paged_prefill_sm90_eligible(p));
  // Where the portable kernel would split the keys, only a grid of two waves or more.
  p.block_size = 16;
  p.max_num_q = 32;  // 1 row tile × 2 kv heads × 1 sequence
  EXPECT_FALSE(paged_prefill_sm90_eligible(p, /*portable_splits=*/true));
  p.num_seqs = 1000;
  EXPECT_EQ(paged_prefill_sm90_eligible(p, true), device_is_sm90());
}

}  // namespace
}  // namespace longctx::cuda::test
