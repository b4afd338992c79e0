// A batch of sequences in a paged bf16 KV cache, for the paged-attention tests: random q and
// K/V, block tables over shuffled blocks, a float64 reference (out and LSE) from the same bf16
// inputs, the device buffers, and the PagedAttentionParams over them.
// Cache slots outside every context are NaN, and unused block-table entries point at the
// NaN-filled null block 0: a kernel that reads past a context shows up as NaN.
#pragma once

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "cuda/test_util.h"
#include "ops/cuda/paged_attention.h"

namespace longctx::cuda::test {

// The batch's shape: heads, head_dim, cache block size, each sequence's context and new tokens.
struct PagedShape {
  int64_t hq, hkv, d, block_size;
  std::vector<int64_t> ctx, nq;
  bool causal = true;
  int64_t kv_partition_size = 0;  // 0 = automatic
};

// How the cache around the batch is laid out, and the reference's softmax scale; each test
// keeps its own (they decide which random blocks the sequences get).
struct PagedLayout {
  int64_t spare_table_entries;  // per sequence, past its longest table: → the null block 0
  int64_t spare_blocks;         // in the pool besides the null block and the used ones
  bool fp32_scale;              // 1/√d rounded to fp32 (the kernel's default) or exact
};

// Host copies of one batch.
struct PagedBatch {
  PagedShape shape;
  int64_t total_q = 0, num_blocks = 0, stride = 0;
  std::vector<int64_t> q_begin;
  std::vector<int32_t> tables;
  std::vector<uint16_t> q, kc, vc;
  double scale = 0;

  PagedBatch(const PagedShape& ps, const PagedLayout& layout, Rng& rng) : shape(ps) {
    const PagedShape& c = shape;
    constexpr uint16_t kNaN = 0xffff;
    const int64_t ns = static_cast<int64_t>(c.ctx.size());
    q_begin.assign(ns + 1, 0);
    for (int64_t s = 0; s < ns; ++s) q_begin[s + 1] = q_begin[s] + c.nq[s];
    total_q = q_begin[ns];
    int64_t need = 0;
    for (auto l : c.ctx) {
      stride = std::max(stride, (l + c.block_size - 1) / c.block_size);
      need += (l + c.block_size - 1) / c.block_size;
    }
    stride += layout.spare_table_entries;
    num_blocks = 1 + need + layout.spare_blocks;
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
      // K then V in one draw: the values of two draws of n, as the normal distribution makes
      // them in pairs and n = ctx · hkv · d is even.
      const auto kv = rng.bf16(2 * c.ctx[s] * width);
      for (int64_t p = 0; p < c.ctx[s]; ++p) {
        const int64_t sl = slot(s, p);
        std::copy_n(kv.begin() + p * width, width, kc.begin() + sl * width);
        std::copy_n(kv.begin() + (c.ctx[s] + p) * width, width, vc.begin() + sl * width);
      }
    }
    q = rng.bf16(total_q * c.hq * c.d);
    scale = layout.fp32_scale ? 1.0f / std::sqrt(static_cast<float>(c.d))
                              : 1.0 / std::sqrt(static_cast<double>(c.d));
  }

  // The cache slot of sequence s's key at position p.
  int64_t slot(int64_t s, int64_t p) const {
    return tables[s * stride + p / shape.block_size] * shape.block_size + p % shape.block_size;
  }

  // Float64 attention over keys [k_lo, k_hi) of every sequence (k_hi < 0: to the end), causal
  // as shape.causal; query i of sequence s sits at position ctx − nq + i.
  void reference(std::vector<double>& out, std::vector<double>& lse, int64_t k_lo = 0,
                 int64_t k_hi = -1) const {
    const PagedShape& c = shape;
    const int64_t G = c.hq / c.hkv, width = c.hkv * c.d;
    out.assign(total_q * c.hq * c.d, 0.0);
    lse.assign(total_q * c.hq, -INFINITY);
    std::vector<int64_t> seq_of(total_q);
    for (size_t s = 0; s + 1 < q_begin.size(); ++s)
      for (int64_t t = q_begin[s]; t < q_begin[s + 1]; ++t) seq_of[t] = static_cast<int64_t>(s);
    parallel_for(total_q * c.hq, [&](int64_t th) {
      const int64_t t = th / c.hq, h = th % c.hq, kh = h / G, s = seq_of[t], i = t - q_begin[s];
      const int64_t qpos = c.ctx[s] - c.nq[s] + i;
      int64_t hi = c.causal ? std::min(c.ctx[s], qpos + 1) : c.ctx[s];
      if (k_hi >= 0) hi = std::min(hi, k_hi);
      if (hi <= k_lo) return;
      std::vector<double> sc(hi - k_lo);
      double mx = -INFINITY;
      for (int64_t p = k_lo; p < hi; ++p) {
        const int64_t sl = slot(s, p);
        double dot = 0;
        for (int64_t j = 0; j < c.d; ++j)
          dot += static_cast<double>(bf16_to_f32(q[(t * c.hq + h) * c.d + j])) *
                 bf16_to_f32(kc[sl * width + kh * c.d + j]);
        sc[p - k_lo] = dot * scale;
        mx = std::max(mx, sc[p - k_lo]);
      }
      double sum = 0;
      for (auto& x : sc) sum += (x = std::exp(x - mx));
      double* o = &out[(t * c.hq + h) * c.d];
      for (int64_t p = k_lo; p < hi; ++p) {
        const int64_t sl = slot(s, p);
        const double w = sc[p - k_lo] / sum;
        for (int64_t j = 0; j < c.d; ++j) o[j] += w * bf16_to_f32(vc[sl * width + kh * c.d + j]);
      }
      lse[t * c.hq + h] = mx + std::log(sum);
    });
  }
};

// Device copies of a batch, outputs poisoned.
struct DeviceBatch {
  DeviceBuffer<uint16_t> q, kc, vc, out;
  DeviceBuffer<float> lse;
  DeviceBuffer<int64_t> q_begin, ctx;
  DeviceBuffer<int32_t> tables;
  explicit DeviceBatch(const PagedBatch& b)
      : q(b.q),
        kc(b.kc),
        vc(b.vc),
        out(b.total_q * b.shape.hq * b.shape.d),
        lse(b.total_q * b.shape.hq),
        q_begin(b.q_begin),
        ctx(b.shape.ctx),
        tables(b.tables) {}
};

inline PagedAttentionParams make_params(const PagedBatch& b, const DeviceBatch& d) {
  const PagedShape& c = b.shape;
  PagedAttentionParams p;
  p.q = d.q.bf16();
  p.out = d.out.bf16();
  p.lse = d.lse.get();
  p.k_cache = d.kc.bf16();
  p.v_cache = d.vc.bf16();
  p.block_size = c.block_size;
  p.num_seqs = static_cast<int64_t>(c.ctx.size());
  p.q_begin = d.q_begin.get();
  p.context_lens = d.ctx.get();
  p.block_tables = d.tables.get();
  p.block_table_stride = b.stride;
  p.max_num_q = *std::max_element(c.nq.begin(), c.nq.end());
  p.max_context_len = *std::max_element(c.ctx.begin(), c.ctx.end());
  p.num_q_heads = c.hq;
  p.num_kv_heads = c.hkv;
  p.head_dim = c.d;
  p.causal = c.causal;
  p.kv_partition_size = c.kv_partition_size;
  return p;
}

// Runs paged_attention on p (allocating its workspace) and synchronises.
inline void run_paged_attention(PagedAttentionParams p, int64_t total_q) {
  const size_t ws_bytes = paged_attention_workspace_bytes(p, total_q);
  DeviceBuffer<uint8_t> ws(ws_bytes);
  p.workspace = ws_bytes ? ws.get() : nullptr;
  p.workspace_bytes = ws_bytes;
  LAUNCH_OK(paged_attention(p, total_q, nullptr));
}

// max |got − ref| ≤ bound over the rows with a key; a row with none must be exactly −inf.
inline void expect_lse_near(const std::vector<float>& got, const std::vector<double>& ref, double bound) {
  ASSERT_EQ(got.size(), ref.size());
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isinf(ref[i])) {
      ASSERT_TRUE(std::isinf(got[i]) && got[i] < 0) << "row " << i << " has no key: lse " << got[i];
      continue;
    }
    ASSERT_FALSE(std::isnan(got[i])) << "row " << i;
    worst = std::max(worst, std::abs(got[i] - ref[i]));
  }
  EXPECT_LE(worst, bound);
}

}  // namespace longctx::cuda::test
