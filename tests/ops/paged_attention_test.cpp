#include "ops/cpu/paged_attention.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <stdexcept>
#include <vector>

#include "ops/cpu/attention.h"

namespace longctx::cpu {
namespace {

constexpr float kNegInf = -INFINITY;

struct SeqSpec {
  int64_t context_len, num_q;
};

// A batch laid out the way the engine lays it out: each sequence's K/V written through
// write_kv_cache into blocks handed out in shuffled order (non-contiguous, non-monotone),
// every other cache element NaN so a wrong slot or the null block poisons the result.
struct Batch {
  int64_t hq = 0, hkv = 0, d = 0, bs = 0;
  std::vector<SeqSpec> seqs;
  std::vector<std::vector<float>> k, v;  // per sequence, [context_len, hkv·d]
  std::vector<float> q;                  // [total_q, q_stride]
  int64_t q_stride = 0;
  std::vector<int64_t> q_begin, context_lens;
  std::vector<int32_t> tables;
  int64_t table_stride = 0;
  std::vector<float> k_cache, v_cache;
  bool causal = true;
  float scale = 0;
  int64_t kv_partition_size = 0;

  int64_t total_q() const { return q_begin.back(); }
};

Batch make_batch(const std::vector<SeqSpec>& seqs, int64_t hq, int64_t hkv, int64_t d, int64_t bs,
                 uint32_t seed, int64_t q_pad = 0) {
  Batch b;
  b.hq = hq, b.hkv = hkv, b.d = d, b.bs = bs, b.seqs = seqs;
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  const int64_t width = hkv * d;
  b.q_begin = {0};
  int64_t blocks_needed = 0, max_blocks = 0;
  for (const auto& s : seqs) {
    b.q_begin.push_back(b.q_begin.back() + s.num_q);
    b.context_lens.push_back(s.context_len);
    const int64_t nb = (s.context_len + bs - 1) / bs;
    blocks_needed += nb;
    max_blocks = std::max(max_blocks, nb);
  }
  b.q_stride = hq * d + q_pad;
  b.q.assign(static_cast<size_t>(b.total_q() * b.q_stride), NAN);  // padding must never be read
  for (int64_t t = 0; t < b.total_q(); ++t)
    for (int64_t c = 0; c < hq * d; ++c) b.q[t * b.q_stride + c] = 2.0f * n(rng);  // peaked softmax
  // Blocks 1..N (0 is the null block), a few spare, dealt out in shuffled order.
  const int64_t num_blocks = blocks_needed + 5;
  std::vector<int32_t> ids(static_cast<size_t>(num_blocks - 1));
  std::iota(ids.begin(), ids.end(), 1);
  std::shuffle(ids.begin(), ids.end(), rng);
  b.table_stride = max_blocks + 2;
  b.tables.assign(seqs.size() * static_cast<size_t>(b.table_stride), 0);
  b.k_cache.assign(static_cast<size_t>(num_blocks * bs * width), NAN);
  b.v_cache = b.k_cache;
  size_t next = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const int64_t ctx = seqs[s].context_len;
    std::vector<float> k(static_cast<size_t>(ctx * width)), v(k.size());
    for (auto& x : k) x = n(rng);
    for (auto& x : v) x = n(rng);
    int32_t* table = b.tables.data() + s * b.table_stride;
    for (int64_t j = 0; j < (ctx + bs - 1) / bs; ++j) table[j] = ids[next++];
    std::vector<int64_t> slots(static_cast<size_t>(ctx));
    for (int64_t p = 0; p < ctx; ++p) slots[p] = static_cast<int64_t>(table[p / bs]) * bs + p % bs;
    write_kv_cache(k.data(), v.data(), ctx, width, width, slots.data(), b.k_cache.data(), b.v_cache.data());
    b.k.push_back(std::move(k));
    b.v.push_back(std::move(v));
  }
  return b;
}

struct Result {
  std::vector<float> out, lse;
};

Result run(const Batch& b) {
  Result r;
  r.out.assign(static_cast<size_t>(b.total_q() * b.hq * b.d), NAN);
  r.lse.assign(static_cast<size_t>(b.total_q() * b.hq), NAN);
  PagedAttentionParams p;
  p.q = b.q.data(), p.q_stride = b.q_stride;
  p.out = r.out.data(), p.lse = r.lse.data();
  p.k_cache = b.k_cache.data(), p.v_cache = b.v_cache.data();
  p.block_size = b.bs;
  p.num_seqs = static_cast<int64_t>(b.seqs.size());
  p.q_begin = b.q_begin.data();
  p.context_lens = b.context_lens.data();
  p.block_tables = b.tables.data(), p.block_table_stride = b.table_stride;
  p.num_q_heads = b.hq, p.num_kv_heads = b.hkv, p.head_dim = b.d;
  p.scale = b.scale;
  p.causal = b.causal;
  p.kv_partition_size = b.kv_partition_size;
  paged_attention(p);
  return r;
}

struct Reference {
  std::vector<double> out, lse;
};

// Straight from the definition, in double, over each sequence's logical K/V.
Reference reference(const Batch& b) {
  Reference ref;
  ref.out.assign(static_cast<size_t>(b.total_q() * b.hq * b.d), 0.0);
  ref.lse.assign(static_cast<size_t>(b.total_q() * b.hq), -INFINITY);
  const double scale = b.scale != 0 ? b.scale : 1.0 / std::sqrt(static_cast<double>(b.d));
  const int64_t group = b.hq / b.hkv, width = b.hkv * b.d;
  for (size_t s = 0; s < b.seqs.size(); ++s) {
    const int64_t nq = b.seqs[s].num_q, ctx = b.seqs[s].context_len;
    for (int64_t i = 0; i < nq; ++i) {
      const int64_t t = b.q_begin[s] + i, qpos = ctx - nq + i;
      const int64_t visible = b.causal ? std::clamp<int64_t>(qpos + 1, 0, ctx) : ctx;
      for (int64_t h = 0; h < b.hq; ++h) {
        const float* q = b.q.data() + t * b.q_stride + h * b.d;
        const int64_t g = h / group;
        if (visible == 0) continue;
        std::vector<double> sc(static_cast<size_t>(visible));
        for (int64_t j = 0; j < visible; ++j) {
          const float* k = b.k[s].data() + j * width + g * b.d;
          double dot = 0;
          for (int64_t c = 0; c < b.d; ++c) dot += static_cast<double>(q[c]) * k[c];
          sc[j] = dot * scale;
        }
        const double mx = *std::max_element(sc.begin(), sc.end());
        double sum = 0;
        for (double x : sc) sum += std::exp(x - mx);
        ref.lse[t * b.hq + h] = mx + std::log(sum);
        double* o = ref.out.data() + (t * b.hq + h) * b.d;
        for (int64_t j = 0; j < visible; ++j) {
          const double w = std::exp(sc[j] - mx) / sum;
          const float* v = b.v[s].data() + j * width + g * b.d;
          for (int64_t c = 0; c < b.d; ++c) o[c] += w * v[c];
        }
      }
    }
  }
  return ref;
}

template <class Ref>
void expect_matches(const Result& got, const Ref& ref, double rtol = 1e-5) {
  double scale = 1e-30;
  for (auto x : ref.out) scale = std::max(scale, std::fabs(static_cast<double>(x)));
  for (size_t i = 0; i < ref.out.size(); ++i)
    ASSERT_NEAR(got.out[i], ref.out[i], rtol * scale) << "out " << i;
  for (size_t i = 0; i < ref.lse.size(); ++i) {
    if (std::isinf(ref.lse[i])) {
      ASSERT_EQ(got.lse[i], kNegInf) << "lse " << i;
    } else {
      ASSERT_NEAR(got.lse[i], ref.lse[i], rtol * std::max(1.0, std::fabs(static_cast<double>(ref.lse[i]))))
          << "lse " << i;
    }
  }
}

// The same batch through the contiguous kernel, one sequence at a time.
Result run_contiguous(const Batch& b) {
  Result r;
  r.out.assign(static_cast<size_t>(b.total_q() * b.hq * b.d), NAN);
  r.lse.assign(static_cast<size_t>(b.total_q() * b.hq), NAN);
  for (size_t s = 0; s < b.seqs.size(); ++s) {
    AttentionParams p;
    p.q = b.q.data() + b.q_begin[s] * b.q_stride, p.q_stride = b.q_stride;
    p.k = b.k[s].data(), p.v = b.v[s].data();
    p.out = r.out.data() + b.q_begin[s] * b.hq * b.d;
    p.lse = r.lse.data() + b.q_begin[s] * b.hq;
    p.num_q = b.seqs[s].num_q, p.num_kv = b.seqs[s].context_len;
    p.num_q_heads = b.hq, p.num_kv_heads = b.hkv, p.head_dim = b.d;
    p.scale = b.scale;
    p.causal = b.causal;
    p.q_pos0 = b.seqs[s].context_len - b.seqs[s].num_q;
    attention(p);
  }
  return r;
}

std::vector<SeqSpec> random_decodes(int64_t n, int64_t max_ctx, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int64_t> len(1, max_ctx);
  std::vector<SeqSpec> seqs;
  for (int64_t i = 0; i < n; ++i) seqs.push_back({len(rng), 1});
  seqs[0].context_len = 1;  // a first decode right after a 1-token prompt
  return seqs;
}

TEST(PagedAttention, PrefillChunkOverCachedPrefixMatchesContiguous) {
  // Positions 0..336 in the cache, the last 37 are this step's chunk (q at 300..336).
  auto b = make_batch({{337, 37}}, 8, 2, 64, 16, 1);
  const auto got = run(b);
  expect_matches(got, reference(b));
  expect_matches(got, run_contiguous(b));
}

TEST(PagedAttention, WholePromptPrefillManyQueryBlocks) {
  auto b = make_batch({{200, 200}}, 4, 4, 32, 16, 2);
  expect_matches(run(b), reference(b));
}

TEST(PagedAttention, DecodeBatchShuffledBlockTables) {
  auto b = make_batch(random_decodes(48, 700, 3), 8, 2, 128, 16, 3);
  const auto got = run(b);
  expect_matches(got, reference(b));
  expect_matches(got, run_contiguous(b));
}

TEST(PagedAttention, MixedBatchDecodesAndPrefillChunks) {
  // Decodes, a whole-prompt prefill, chunks over cached prefixes, a sequence with no
  // query this step, and a 1-token prompt — in one call.
  auto b =
      make_batch({{90, 1}, {129, 129}, {1, 1}, {300, 45}, {77, 0}, {513, 1}, {64, 64}, {1000, 100}, {17, 1}},
                 6, 2, 64, 16, 4);
  expect_matches(run(b), reference(b));
}

struct HeadsCase {
  int64_t hq, hkv, bs;
};

class PagedAttentionHeads : public ::testing::TestWithParam<HeadsCase> {};

// MHA, GQA and MQA (32-wide groups take the sgemm path even for decodes) at block
// sizes 1, 16 and 32, with context lengths that are and are not multiples of the block.
TEST_P(PagedAttentionHeads, DecodesAndChunksMatchReference) {
  const auto c = GetParam();
  auto b = make_batch({{1, 1}, {32, 1}, {33, 1}, {95, 7}, {160, 1}, {250, 250}, {31, 31}}, c.hq, c.hkv, 32,
                      c.bs, static_cast<uint32_t>(c.hq * 100 + c.hkv * 10 + c.bs));
  expect_matches(run(b), reference(b));
}

INSTANTIATE_TEST_SUITE_P(Paged, PagedAttentionHeads,
                         ::testing::Values(HeadsCase{4, 4, 16}, HeadsCase{8, 2, 16}, HeadsCase{6, 1, 16},
                                           HeadsCase{32, 1, 16}, HeadsCase{4, 4, 1}, HeadsCase{8, 2, 1},
                                           HeadsCase{32, 1, 1}, HeadsCase{4, 4, 32}, HeadsCase{8, 2, 32},
                                           HeadsCase{16, 1, 32}),
                         [](const auto& tc) {
                           return "hq" + std::to_string(tc.param.hq) + "_hkv" + std::to_string(tc.param.hkv) +
                                  "_bs" + std::to_string(tc.param.bs);
                         });

TEST(PagedAttention, ContextLengthOneSeesOnlyItself) {
  auto b = make_batch({{1, 1}, {1, 1}}, 4, 2, 16, 16, 5);
  const auto got = run(b);
  expect_matches(got, reference(b));
  // One visible key: softmax weight 1, so out = v_0 exactly and lse = the single score.
  for (int64_t h = 0; h < 4; ++h)
    for (int64_t c = 0; c < 16; ++c) EXPECT_FLOAT_EQ(got.out[h * 16 + c], b.v[0][(h / 2) * 16 + c]);
}

TEST(PagedAttention, FusedQkvLayout) {
  // q, k and v of this step's tokens are columns of one [tokens, (hq + 2·hkv)·d] buffer:
  // write_kv_cache reads k/v at that stride and paged_attention reads q at it.
  const int64_t hq = 8, hkv = 2, d = 32, bs = 16, width = hkv * d, fused = (hq + 2 * hkv) * d;
  auto b = make_batch({{70, 20}, {40, 1}}, hq, hkv, d, bs, 6, 2 * width);
  // Rewrite the new tokens' K/V through the fused buffer (their slots were filled already,
  // so poison them first).
  std::vector<float> qkv = b.q;
  std::vector<int64_t> slots;
  for (size_t s = 0; s < b.seqs.size(); ++s) {
    const int64_t ctx = b.seqs[s].context_len, nq = b.seqs[s].num_q;
    for (int64_t i = 0; i < nq; ++i) {
      const int64_t pos = ctx - nq + i, t = b.q_begin[s] + i;
      std::copy_n(b.k[s].begin() + pos * width, width, qkv.begin() + t * fused + hq * d);
      std::copy_n(b.v[s].begin() + pos * width, width, qkv.begin() + t * fused + hq * d + width);
      const int64_t slot = static_cast<int64_t>(b.tables[s * b.table_stride + pos / bs]) * bs + pos % bs;
      std::fill_n(b.k_cache.begin() + slot * width, width, NAN);
      std::fill_n(b.v_cache.begin() + slot * width, width, NAN);
      slots.push_back(slot);
    }
  }
  write_kv_cache(qkv.data() + hq * d, qkv.data() + hq * d + width, b.total_q(), fused, width, slots.data(),
                 b.k_cache.data(), b.v_cache.data());
  b.q = qkv;
  ASSERT_EQ(b.q_stride, fused);
  expect_matches(run(b), reference(b));
}

TEST(PagedAttention, NonCausalAndCustomScale) {
  auto b = make_batch({{50, 20}, {33, 1}}, 4, 2, 16, 16, 7);
  b.causal = false;
  b.scale = 0.3f;
  expect_matches(run(b), reference(b));
}

TEST(PagedAttention, SplitKvMatchesUnsplit) {
  // Batch-1 long decode on one kv head, and a prefill chunk whose early queries see none of
  // the last partitions (those partials have lse = -inf and must drop out of the merge).
  for (const auto& seqs : {std::vector<SeqSpec>{{3001, 1}}, std::vector<SeqSpec>{{700, 300}, {1200, 1}}}) {
    auto b = make_batch(seqs, 8, 1, 64, 16, 8);
    const auto unsplit = run(b);
    expect_matches(unsplit, reference(b));
    for (int64_t partition : {256, 100, 16}) {  // 100 rounds up to 112 (7 blocks)
      b.kv_partition_size = partition;
      SCOPED_TRACE(partition);
      const auto split = run(b);
      expect_matches(split, reference(b));
      for (size_t i = 0; i < split.out.size(); ++i) ASSERT_NEAR(split.out[i], unsplit.out[i], 1e-5f) << i;
      for (size_t i = 0; i < split.lse.size(); ++i) ASSERT_NEAR(split.lse[i], unsplit.lse[i], 1e-4f) << i;
    }
  }
}

TEST(PagedAttention, AutomaticSplitForBatchOneDecode) {
  // One work item and four threads: the kernel splits on its own.
  auto b = make_batch({{5000, 1}}, 4, 1, 64, 16, 9);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(4);
  const auto got = run(b);
  omp_set_num_threads(saved);
  expect_matches(got, reference(b));
}

TEST(PagedAttention, NullLseIsAllowed) {
  auto b = make_batch({{300, 1}, {40, 40}}, 4, 2, 32, 16, 10);
  b.kv_partition_size = 64;  // the split path too
  const auto want = run(b);
  std::vector<float> out(want.out.size(), NAN);
  PagedAttentionParams p;
  p.q = b.q.data(), p.q_stride = b.q_stride, p.out = out.data();
  p.k_cache = b.k_cache.data(), p.v_cache = b.v_cache.data(), p.block_size = b.bs;
  p.num_seqs = 2, p.q_begin = b.q_begin.data(), p.context_lens = b.context_lens.data();
  p.block_tables = b.tables.data(), p.block_table_stride = b.table_stride;
  p.num_q_heads = 4, p.num_kv_heads = 2, p.head_dim = 32, p.kv_partition_size = 64;
  paged_attention(p);
  EXPECT_EQ(out, want.out);
}

TEST(PagedAttention, RejectsBadShapes) {
  PagedAttentionParams p;
  p.num_seqs = 1, p.num_q_heads = 6, p.num_kv_heads = 4, p.head_dim = 8;
  EXPECT_THROW(paged_attention(p), std::invalid_argument);
  p.num_kv_heads = 2, p.block_size = 0;
  EXPECT_THROW(paged_attention(p), std::invalid_argument);
}

TEST(PagedWriteKvCache, PlacesTokensInTheirSlotsAndSkipsPadding) {
  const int64_t width = 6, stride = 10, slots_total = 12;
  std::vector<float> src(5 * stride);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<float>(i);
  const float* k = src.data();
  const float* v = src.data() + 3;  // v columns overlap k's: only width elements of each are read
  const std::vector<int64_t> slots = {7, -1, 0, 11, 3};
  std::vector<float> kc(static_cast<size_t>(slots_total * width), -1.0f), vc = kc;
  write_kv_cache(k, v, 5, stride, width, slots.data(), kc.data(), vc.data());
  for (int64_t slot = 0; slot < slots_total; ++slot) {
    const auto it = std::find(slots.begin(), slots.end(), slot);
    for (int64_t c = 0; c < width; ++c) {
      if (it == slots.end()) {
        EXPECT_EQ(kc[slot * width + c], -1.0f) << slot;  // untouched (token 1 was padding)
        EXPECT_EQ(vc[slot * width + c], -1.0f) << slot;
      } else {
        const int64_t t = it - slots.begin();
        EXPECT_EQ(kc[slot * width + c], k[t * stride + c]) << slot;
        EXPECT_EQ(vc[slot * width + c], v[t * stride + c]) << slot;
      }
    }
  }
}

}  // namespace
}  // namespace longctx::cpu
