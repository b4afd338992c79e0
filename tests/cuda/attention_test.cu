// Paged attention (prefill and decode shapes, flash-decoding splits) and the LSE merge,
// against a float64 reference from the same bf16 inputs.
//   out: ‖out − ref‖/‖ref‖ ≤ 1e-2 — P is rounded to bf16 for the P·V tensor-core product
//        and out is bf16: each is ≤ 2⁻⁹ relative per element.
//   lse: max |lse − ref| ≤ 2e-3 — fp32 accumulation of exact bf16 products; P's rounding
//        does not enter the LSE. Rows with no visible key must give exactly −inf and out 0.
// Cache slots outside every context are NaN, and unused block-table entries point at the
// NaN-filled null block 0: a kernel that reads past a context shows up as NaN.
#include <algorithm>
#include <cmath>
#include <string>

#include "cuda/paged_attention_harness.h"
#include "ops/cuda/attention.h"

namespace longctx::cuda::test {
namespace {

constexpr double kOutBound = 1e-2;
constexpr double kLseBound = 2e-3;

struct AttnCase {
  std::string name;
  int64_t hq, hkv, d, block_size;
  std::vector<int64_t> ctx, nq;
  bool causal = true;
  int64_t partition = 0;  // 0 = automatic
  PagedShape shape() const { return {hq, hkv, d, block_size, ctx, nq, causal, partition}; }
};

// Which blocks the sequences get, and the reference's 1/√d rounded to fp32 as the kernel's.
constexpr PagedLayout kLayout{/*spare_table_entries=*/2, /*spare_blocks=*/5, /*fp32_scale=*/true};

class PagedAttentionTest : public ::testing::TestWithParam<AttnCase> {};

TEST_P(PagedAttentionTest, MatchesFloat64Reference) {
  const AttnCase& c = GetParam();
  Rng rng;
  SCOPED_TRACE("seed " + std::to_string(rng.seed));
  PagedBatch b(c.shape(), kLayout, rng);
  DeviceBatch d(b);
  ASSERT_NO_FATAL_FAILURE(run_paged_attention(make_params(b, d), b.total_q));
  std::vector<double> ref, ref_lse;
  b.reference(ref, ref_lse);
  const double err = rel_error(d.out.download(), ref);
  EXPECT_LE(err, kOutBound);
  expect_lse_near(d.lse.download(), ref_lse, kLseBound);
  RecordProperty("rel_error", std::to_string(err));
}

std::vector<int64_t> ones(size_t n) { return std::vector<int64_t>(n, 1); }
std::vector<int64_t> long_mixed_contexts() { return {32768, 20000, 777, 32767, 1, 9000, 31000, 16384}; }

INSTANTIATE_TEST_SUITE_P(Shapes, PagedAttentionTest,
                         ::testing::Values(
                             // Whole prompts, contexts not multiples of the block size.
                             AttnCase{"PrefillGqa32x8D128", 32, 8, 128, 16, {37, 300, 515}, {37, 300, 515}},
                             AttnCase{"PrefillGqa32x8D64", 32, 8, 64, 16, {200, 81}, {200, 81}},
                             AttnCase{"PrefillMqa32x1D128", 32, 1, 128, 16, {150, 47}, {150, 47}},
                             AttnCase{"PrefillMhaD64Block5", 4, 4, 64, 5, {123, 64}, {123, 64}},
                             // A chunk over a cached prefix (chunked prefill).
                             AttnCase{"PrefixChunkD128", 8, 2, 128, 16, {700, 193, 64}, {129, 64, 1}},
                             AttnCase{"PrefixChunkD64Split", 8, 2, 64, 16, {900, 300}, {77, 200}, true, 128},
                             AttnCase{"PrefixChunkD128Split64", 32, 8, 128, 32, {650}, {70}, true, 64},
                             // Decode batches (max_num_q = 1): automatic and forced splits.
                             AttnCase{"DecodeGqa32x8D128", 32, 8, 128, 16, {1, 17, 513, 2000, 4097}, ones(5)},
                             AttnCase{"DecodeGqa32x8D64", 32, 8, 64, 16, {3, 1030, 64}, ones(3)},
                             AttnCase{"DecodeMqa32x1D128", 32, 1, 128, 16, {999, 2500}, ones(2)},
                             AttnCase{"DecodeMhaD128Block7", 8, 8, 128, 7, {100, 33}, ones(2)},
                             AttnCase{
                                 "DecodeForcedSplit64", 32, 8, 128, 16, {1000, 65, 64, 1}, ones(4), true, 64},
                             AttnCase{"DecodeNoSplitLong", 16, 4, 128, 16, {3000}, ones(1), true, 1 << 20},
                             // Long contexts with the automatic split (one wave of partitions):
                             // 8 sequences up to 32K (one of 1 key, one ending mid-block), one of
                             // 128K; and 79 forced partitions (the merge's several rounds).
                             AttnCase{"DecodeLong32Kx8", 16, 4, 128, 16, long_mixed_contexts(), ones(8)},
                             AttnCase{"DecodeLong128K", 8, 2, 128, 16, {131072}, ones(1)},
                             AttnCase{"DecodeForcedSplit79D64", 8, 2, 64, 16, {5000, 3}, ones(2), true, 64},
                             // A mixed step: decodes, a chunk, and a sequence with no new token.
                             AttnCase{"MixedStep", 16, 4, 128, 16, {300, 45, 1000, 12}, {1, 45, 33, 0}},
                             // Not causal (every key visible), prefill and decode shapes.
                             AttnCase{"NonCausalChunk", 8, 2, 64, 16, {300}, {40}, false},
                             AttnCase{"NonCausalDecode", 8, 2, 128, 16, {301, 5}, ones(2), false},
                             // head_dim 16 and 32 (the test models: rows of 2 and 4 chunks in shared memory).
                             AttnCase{"PrefillGqa4x2D16Block5", 4, 2, 16, 5, {300, 33}, {300, 33}},
                             AttnCase{"PrefixChunkD32", 8, 4, 32, 16, {300, 90}, {37, 90}},
                             AttnCase{"DecodeD16ForcedSplit", 4, 2, 16, 16, {1000, 65, 3}, ones(3), true, 64},
                             AttnCase{"DecodeD32", 8, 4, 32, 16, {2100, 5}, ones(2)}),
                         [](const ::testing::TestParamInfo<AttnCase>& i) { return i.param.name; });

// The split property of DESIGN.md §3: attention over keys [0, a) and over [a, ctx), merged by
// merge_attention_states, equals attention over [0, ctx). The second half is addressed by
// advancing the block tables a / block_size blocks.
void split_property(int64_t d, int64_t nq) {
  Rng rng;
  SCOPED_TRACE("seed " + std::to_string(rng.seed) + " d " + std::to_string(d) + " nq " + std::to_string(nq));
  const int64_t a = 256;
  AttnCase c{"split", 16, 4, d, 16, {640, 400, 300}, {nq, nq, nq}, false};
  PagedBatch b(c.shape(), kLayout, rng);
  DeviceBatch full(b), part_a(b), part_b(b);
  ASSERT_NO_FATAL_FAILURE(run_paged_attention(make_params(b, full), b.total_q));

  PagedAttentionParams pa = make_params(b, part_a);
  DeviceBuffer<int64_t> ctx_a(std::vector<int64_t>(c.ctx.size(), a));
  pa.context_lens = ctx_a.get();
  pa.max_context_len = a;
  ASSERT_NO_FATAL_FAILURE(run_paged_attention(pa, b.total_q));

  PagedAttentionParams pb = make_params(b, part_b);
  std::vector<int64_t> rest;
  for (auto l : c.ctx) rest.push_back(l - a);
  DeviceBuffer<int64_t> ctx_b(rest);
  pb.context_lens = ctx_b.get();
  pb.block_tables = part_b.tables.get() + a / c.block_size;
  pb.max_context_len = *std::max_element(rest.begin(), rest.end());
  ASSERT_NO_FATAL_FAILURE(run_paged_attention(pb, b.total_q));

  const int64_t rows = b.total_q * c.hq;
  DeviceBuffer<uint16_t> merged(rows * d);
  DeviceBuffer<float> merged_lse(rows);
  LAUNCH_OK(merge_attention_states(part_a.out.get(), part_a.lse.get(), part_b.out.get(), part_b.lse.get(),
                                   merged.get(), merged_lse.get(), rows, d, DType::kBF16, nullptr));
  std::vector<double> ref, ref_lse;
  b.reference(ref, ref_lse);
  EXPECT_LE(rel_error(full.out.download(), ref), kOutBound);
  EXPECT_LE(rel_error(merged.download(), ref), kOutBound);
  expect_lse_near(merged_lse.download(), ref_lse, kLseBound);
  // The halves against their own references too.
  std::vector<double> ref_a, lse_a_ref;
  b.reference(ref_a, lse_a_ref, 0, a);
  EXPECT_LE(rel_error(part_a.out.download(), ref_a), kOutBound);
  expect_lse_near(part_a.lse.download(), lse_a_ref, kLseBound);
}

TEST(PagedAttentionSplit, TwoPartialsMergedEqualFull) {
  split_property(128, 1);  // decode shape
  split_property(64, 1);
  split_property(128, 9);  // prefill shape (9 queries per sequence)
}

// The split decode's merge is launched as a programmatic dependent of the attention grid; in
// a CUDA graph (how the model replays decode steps) that becomes a programmatic edge. A replay
// into poisoned outputs must give the eager result bit for bit, on both automatic and forced
// splits.
TEST(PagedAttention, SplitDecodeInACudaGraphEqualsEager) {
  for (const int64_t partition : {int64_t{0}, int64_t{128}}) {
    Rng rng;
    SCOPED_TRACE("seed " + std::to_string(rng.seed) + " partition " + std::to_string(partition));
    AttnCase c{"graph", 32, 8, 128, 16, {9000, 3000, 1}, ones(3), true, partition};
    PagedBatch b(c.shape(), kLayout, rng);
    DeviceBatch d(b);
    PagedAttentionParams p = make_params(b, d);
    const size_t ws_bytes = paged_attention_workspace_bytes(p, b.total_q);
    ASSERT_GT(ws_bytes, 0u) << "the case must split";
    DeviceBuffer<uint8_t> ws(ws_bytes);
    p.workspace = ws.get();
    p.workspace_bytes = ws_bytes;
    LAUNCH_OK(paged_attention(p, b.total_q, nullptr));
    const auto eager = d.out.download();
    const auto eager_lse = d.lse.download();
    std::vector<double> ref, ref_lse;
    b.reference(ref, ref_lse);
    EXPECT_LE(rel_error(eager, ref), kOutBound);

    cudaStream_t st;
    CUDA_OK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    cudaGraph_t g;
    cudaGraphExec_t ge;
    CUDA_OK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    ASSERT_EQ(cudaSuccess, paged_attention(p, b.total_q, st));
    CUDA_OK(cudaStreamEndCapture(st, &g));
    CUDA_OK(cudaGraphInstantiate(&ge, g, 0));
    for (int rep = 0; rep < 3; ++rep) {
      d.out.poison();
      d.lse.poison();
      ws.poison();
      CUDA_OK(cudaDeviceSynchronize());  // the poison (legacy stream) lands before the replay
      CUDA_OK(cudaGraphLaunch(ge, st));
      CUDA_OK(cudaStreamSynchronize(st));
      EXPECT_EQ(d.out.download(), eager) << "replay " << rep;
      EXPECT_EQ(d.lse.download(), eager_lse) << "replay " << rep;
    }
    cudaGraphExecDestroy(ge);
    cudaGraphDestroy(g);
    cudaStreamDestroy(st);
  }
}

// Decode graphs launch with max_context_len rounded up to a power of two (the bucket), so the
// automatic split is planned for more keys than any sequence has: each split must still size
// its partition from its own sequence's keys, and the result must not change with the
// bucket. Contexts just past a power of two (the worst case: a bucket of twice the keys).
TEST(PagedAttention, AutoSplitDecodeWithABucketedMaxContextMatchesReference) {
  for (const int64_t bucket_factor : {int64_t{1}, int64_t{2}, int64_t{4}}) {
    Rng rng;
    SCOPED_TRACE("seed " + std::to_string(rng.seed) + " bucket x" + std::to_string(bucket_factor));
    AttnCase c{"bucket", 32, 8, 128, 16, {16385, 9001, 4097, 1, 300, 16384, 2, 8191}, ones(8), true, 0};
    PagedBatch b(c.shape(), kLayout, rng);
    DeviceBatch d(b);
    PagedAttentionParams p = make_params(b, d);
    p.max_context_len = 16385 * bucket_factor;  // what a graph bucket would pass
    const size_t ws_bytes = paged_attention_workspace_bytes(p, b.total_q);
    ASSERT_GT(ws_bytes, 0u) << "the case must split";
    DeviceBuffer<uint8_t> ws(ws_bytes);
    p.workspace = ws.get();
    p.workspace_bytes = ws_bytes;
    d.out.poison();
    d.lse.poison();
    LAUNCH_OK(paged_attention(p, b.total_q, nullptr));
    std::vector<double> ref, ref_lse;
    b.reference(ref, ref_lse);
    EXPECT_LE(rel_error(d.out.download(), ref), kOutBound);
    expect_lse_near(d.lse.download(), ref_lse, kLseBound);
  }
}

TEST(PagedAttention, RejectsBadShapes) {
  PagedAttentionParams p;
  p.num_seqs = 1;
  p.num_q_heads = 6;
  p.num_kv_heads = 4;
  p.head_dim = 128;
  EXPECT_THROW(paged_attention(p, 1, nullptr), std::invalid_argument);
  p.num_kv_heads = 2;
  p.head_dim = 96;
  EXPECT_THROW(paged_attention(p, 1, nullptr), std::invalid_argument);
}

// merge_attention_states edge cases: a −inf side drops out without its o being read (it is
// NaN here), two −inf sides give zeros and −inf; o_out may alias o_a.
template <typename T>
void merge_edges(DType dt) {
  Rng rng;
  SCOPED_TRACE("seed " + std::to_string(rng.seed));
  const int64_t rows = 301, d = 128;
  auto la = rng.f32(rows, 3.0f), lb = rng.f32(rows, 3.0f);
  std::vector<T> oa(rows * d), ob(rows * d);
  for (size_t i = 0; i < oa.size(); ++i) {
    const float x = rng.f32(2)[0], y = rng.f32(2)[1];
    if constexpr (sizeof(T) == 2) {
      oa[i] = f32_to_bf16(x);
      ob[i] = f32_to_bf16(y);
    } else {
      oa[i] = x;
      ob[i] = y;
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    const int kind = r % 4;  // 0: both, 1: a empty, 2: b empty, 3: both empty
    if (kind == 1 || kind == 3) la[r] = -INFINITY;
    if (kind == 2 || kind == 3) lb[r] = -INFINITY;
    for (int64_t j = 0; j < d; ++j) {
      if (std::isinf(la[r])) oa[r * d + j] = sizeof(T) == 2 ? T(0xffff) : T(NAN);
      if (std::isinf(lb[r])) ob[r * d + j] = sizeof(T) == 2 ? T(0xffff) : T(NAN);
    }
  }
  auto val = [](T x) -> double {
    if constexpr (sizeof(T) == 2)
      return bf16_to_f32(x);
    else
      return x;
  };
  std::vector<double> ref(rows * d, 0.0), ref_lse(rows, -INFINITY);
  for (int64_t r = 0; r < rows; ++r) {
    const double m = std::max<double>(la[r], lb[r]);
    if (std::isinf(m)) continue;
    const double ea = std::isinf(la[r]) ? 0 : std::exp(la[r] - m),
                 eb = std::isinf(lb[r]) ? 0 : std::exp(lb[r] - m);
    ref_lse[r] = m + std::log(ea + eb);
    for (int64_t j = 0; j < d; ++j)
      ref[r * d + j] =
          (ea ? ea * val(oa[r * d + j]) : 0) / (ea + eb) + (eb ? eb * val(ob[r * d + j]) : 0) / (ea + eb);
  }
  DeviceBuffer<T> doa(oa), dob(ob);
  DeviceBuffer<float> dla(la), dlb(lb);
  LAUNCH_OK(merge_attention_states(doa.get(), dla.get(), dob.get(), dlb.get(), doa.get(), dla.get(), rows, d,
                                   dt,
                                   nullptr));  // in place into side a
  const auto out = doa.download();
  EXPECT_LE(rel_error(out, ref), sizeof(T) == 2 ? kOutBound : 1e-6);
  expect_lse_near(dla.download(), ref_lse, 1e-5);
  for (int64_t r = 3; r < rows; r += 4)
    for (int64_t j = 0; j < d; ++j) ASSERT_EQ(0.0, val(out[r * d + j])) << "row " << r << " with no keys";
}

TEST(MergeAttentionStates, EdgeCasesBf16) { merge_edges<uint16_t>(DType::kBF16); }
TEST(MergeAttentionStates, EdgeCasesF32) { merge_edges<float>(DType::kF32); }

}  // namespace
}  // namespace longctx::cuda::test
