// The Hopper (wgmma) prefill kernel, src/ops/cuda/paged_prefill_sm90.cu, against a float64
// reference from the same bf16 inputs, called directly (with its K/V tiles by TMA where the
// block size allows, and by cp.async alone) and through paged_attention()'s dispatch; the
// portable kernel (LONGCTX_ATTN_SM90=0) on the same inputs beside it.
//   out: ‖out − ref‖/‖ref‖ ≤ 1e-2 for EACH sequence (P is rounded to bf16 for P·V, out is bf16);
//   lse: max |lse − ref| ≤ 2e-3; rows with no visible key exactly −inf.
// Outputs start poisoned (NaN); cache slots outside every context are NaN and unused
// block-table entries point at the NaN null block 0, so a read past a context shows.
// Skipped on a device that is not compute capability 9.0 (the kernel does not run there).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <string>

#include "cuda/test_util.h"
#include "ops/cuda/paged_attention.h"
#include "ops/cuda/paged_prefill_sm90.h"

namespace longctx::cuda::test {
namespace {

constexpr double kOutBound = 1e-2;
constexpr double kLseBound = 2e-3;
constexpr uint16_t kNaN = 0xffff;

struct Sm90Case {
  std::string name;
  int64_t hq, hkv, block_size;
  std::vector<int64_t> ctx, nq;
  bool causal = true;
  int64_t d = 128;
};

struct Batch {
  Sm90Case c;
  int64_t total_q = 0, stride = 0;
  std::vector<int64_t> q_begin;
  std::vector<int32_t> tables;
  std::vector<uint16_t> q, kc, vc;

  Batch(const Sm90Case& sc, Rng& rng) : c(sc) {
    const int64_t ns = static_cast<int64_t>(c.ctx.size());
    q_begin.assign(ns + 1, 0);
    for (int64_t s = 0; s < ns; ++s) q_begin[s + 1] = q_begin[s] + c.nq[s];
    total_q = q_begin[ns];
    int64_t need = 0;
    for (auto l : c.ctx) {
      stride = std::max(stride, (l + c.block_size - 1) / c.block_size);
      need += (l + c.block_size - 1) / c.block_size;
    }
    stride += 3;  // unused entries → the null block 0
    const int64_t num_blocks = 1 + need + 7;
    std::vector<int32_t> ids(num_blocks - 1);
    std::iota(ids.begin(), ids.end(), 1);
    std::shuffle(ids.begin(), ids.end(), rng.gen);  // blocks in any order
    tables.assign(ns * stride, 0);
    const int64_t width = c.hkv * c.d;
    kc.assign(num_blocks * c.block_size * width, kNaN);
    vc.assign(kc.size(), kNaN);
    size_t next = 0;
    for (int64_t s = 0; s < ns; ++s) {
      const int64_t nb = (c.ctx[s] + c.block_size - 1) / c.block_size;
      for (int64_t b = 0; b < nb; ++b) tables[s * stride + b] = ids[next++];
      const auto k = rng.bf16(c.ctx[s] * width), v = rng.bf16(c.ctx[s] * width);
      for (int64_t p = 0; p < c.ctx[s]; ++p) {
        const int64_t slot = tables[s * stride + p / c.block_size] * c.block_size + p % c.block_size;
        std::copy_n(k.begin() + p * width, width, kc.begin() + slot * width);
        std::copy_n(v.begin() + p * width, width, vc.begin() + slot * width);
      }
    }
    q = rng.bf16(total_q * c.hq * c.d);
  }

  double scale() const { return 1.0 / std::sqrt(static_cast<double>(c.d)); }

  // Float64 attention; query i of sequence s at position ctx − nq + i.
  void reference(std::vector<double>& out, std::vector<double>& lse) const {
    const int64_t G = c.hq / c.hkv, width = c.hkv * c.d;
    out.assign(total_q * c.hq * c.d, 0.0);
    lse.assign(total_q * c.hq, -INFINITY);
    std::vector<int64_t> seq_of(total_q);
    for (size_t s = 0; s + 1 < q_begin.size(); ++s)
      for (int64_t t = q_begin[s]; t < q_begin[s + 1]; ++t) seq_of[t] = static_cast<int64_t>(s);
    parallel_for(total_q * c.hq, [&](int64_t th) {
      const int64_t t = th / c.hq, h = th % c.hq, s = seq_of[t], i = t - q_begin[s];
      const int64_t qpos = c.ctx[s] - c.nq[s] + i;
      const int64_t hi = c.causal ? std::min(c.ctx[s], qpos + 1) : c.ctx[s];
      if (hi <= 0) return;
      std::vector<double> sc(hi);
      double mx = -INFINITY;
      for (int64_t p = 0; p < hi; ++p) {
        const int64_t slot = tables[s * stride + p / c.block_size] * c.block_size + p % c.block_size;
        double dot = 0;
        for (int64_t j = 0; j < c.d; ++j)
          dot += static_cast<double>(bf16_to_f32(q[(t * c.hq + h) * c.d + j])) *
                 bf16_to_f32(kc[slot * width + (h / G) * c.d + j]);
        sc[p] = dot * scale();
        mx = std::max(mx, sc[p]);
      }
      double sum = 0;
      for (auto& x : sc) sum += (x = std::exp(x - mx));
      double* o = &out[(t * c.hq + h) * c.d];
      for (int64_t p = 0; p < hi; ++p) {
        const int64_t slot = tables[s * stride + p / c.block_size] * c.block_size + p % c.block_size;
        for (int64_t j = 0; j < c.d; ++j)
          o[j] += sc[p] / sum * bf16_to_f32(vc[slot * width + (h / G) * c.d + j]);
      }
      lse[t * c.hq + h] = mx + std::log(sum);
    });
  }
};

struct DeviceBatch {
  DeviceBuffer<uint16_t> q, kc, vc, out;
  DeviceBuffer<float> lse;
  DeviceBuffer<int64_t> q_begin, ctx;
  DeviceBuffer<int32_t> tables;
  explicit DeviceBatch(const Batch& b)
      : q(b.q),
        kc(b.kc),
        vc(b.vc),
        out(b.total_q * b.c.hq * b.c.d),
        lse(b.total_q * b.c.hq),
        q_begin(b.q_begin),
        ctx(b.c.ctx),
        tables(b.tables) {}
};

PagedAttentionParams make_params(const Batch& b, const DeviceBatch& d) {
  PagedAttentionParams p;
  p.q = d.q.bf16();
  p.out = d.out.bf16();
  p.lse = d.lse.get();
  p.k_cache = d.kc.bf16();
  p.v_cache = d.vc.bf16();
  p.block_size = b.c.block_size;
  p.num_seqs = static_cast<int64_t>(b.c.ctx.size());
  p.q_begin = d.q_begin.get();
  p.context_lens = d.ctx.get();
  p.block_tables = d.tables.get();
  p.block_table_stride = b.stride;
  p.max_num_q = *std::max_element(b.c.nq.begin(), b.c.nq.end());
  p.max_context_len = *std::max_element(b.c.ctx.begin(), b.c.ctx.end());
  p.num_q_heads = b.c.hq;
  p.num_kv_heads = b.c.hkv;
  p.head_dim = b.c.d;
  p.causal = b.c.causal;
  return p;
}

bool device_is_sm90() {
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
  return major == 9 && minor == 0;
}

// Each sequence's rows against the reference, and the LSE of every row.
void expect_matches(const Batch& b, const DeviceBatch& d, const std::vector<double>& ref,
                    const std::vector<double>& ref_lse, const std::string& what) {
  SCOPED_TRACE(what);
  const auto out = d.out.download();
  const auto lse = d.lse.download();
  const int64_t row = b.c.hq * b.c.d;
  for (size_t s = 0; s + 1 < b.q_begin.size(); ++s) {
    const int64_t lo = b.q_begin[s] * row, hi = b.q_begin[s + 1] * row;
    if (hi == lo) continue;
    const std::vector<uint16_t> o(out.begin() + lo, out.begin() + hi);
    const std::vector<double> r(ref.begin() + lo, ref.begin() + hi);
    const double err = rel_error(o, r);
    EXPECT_LE(err, kOutBound) << "sequence " << s;
  }
  double worst = 0;
  for (size_t i = 0; i < lse.size(); ++i) {
    if (std::isinf(ref_lse[i])) {
      ASSERT_TRUE(std::isinf(lse[i]) && lse[i] < 0) << "row " << i << " has no key: lse " << lse[i];
      continue;
    }
    ASSERT_FALSE(std::isnan(lse[i])) << "row " << i;
    worst = std::max(worst, std::abs(lse[i] - ref_lse[i]));
  }
  EXPECT_LE(worst, kLseBound);
}

// Sets LONGCTX_ATTN_SM90 for the scope of one call (the dispatch reads it on every call).
struct Sm90Switch {
  explicit Sm90Switch(bool on) { setenv("LONGCTX_ATTN_SM90", on ? "1" : "0", 1); }
  ~Sm90Switch() { unsetenv("LONGCTX_ATTN_SM90"); }
};

void run_dispatch(PagedAttentionParams p, int64_t total_q) {
  const size_t ws_bytes = paged_attention_workspace_bytes(p, total_q);
  DeviceBuffer<uint8_t> ws(ws_bytes);
  p.workspace = ws_bytes ? ws.get() : nullptr;
  p.workspace_bytes = ws_bytes;
  LAUNCH_OK(paged_attention(p, total_q, nullptr));
}

class PrefillSm90Test : public ::testing::TestWithParam<Sm90Case> {};

TEST_P(PrefillSm90Test, MatchesFloat64Reference) {
  if (!device_is_sm90()) GTEST_SKIP() << "not a compute capability 9.0 device";
  const Sm90Case& c = GetParam();
  Rng rng;
  SCOPED_TRACE("seed " + std::to_string(rng.seed));
  Batch b(c, rng);
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
  run_dispatch(make_params(b, dispatched), b.total_q);
  expect_matches(b, dispatched, ref, ref_lse, "paged_attention");
  {
    Sm90Switch off(false);
    ASSERT_FALSE(paged_prefill_sm90_eligible(make_params(b, portable)));
    run_dispatch(make_params(b, portable), b.total_q);
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
