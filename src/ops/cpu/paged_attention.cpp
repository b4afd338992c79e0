// Paged attention on the CPU. A work item is (sequence, kv head, block of queries, key
// partition); its rows are every (query, q head of the GQA group) pair, so each K/V tile
// read from the cache serves the whole group. Keys stream in chunks of up to kKeyChunk
// through the block table; each chunk is one online-softmax step (attention_tile.h).
//
// Two ways to compute a chunk, picked by the item's row count:
//  - many rows (prefill chunks, wide GQA groups): gather the chunk's K and V blocks into
//    contiguous scratch and run the two sgemms — the copy is amortised over ≥ 24 rows, and
//    one 256-key sgemm beats sixteen 16-key ones (OpenBLAS packs Q again on every call);
//  - few rows (decode): dot products and axpys straight from the cache blocks, no copy and
//    no sgemm call overhead; these items are bound by streaming K/V from memory.
// Flash-decoding (Dao et al. 2023, "Flash-Decoding for long-context inference"): when there
// are too few items for the threads, each item's keys are split into partitions computed
// as separate items, and their (output, LSE) pairs merged with merge_attention_states.
#include "ops/cpu/paged_attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops/cpu/attention.h"
#include "ops/cpu/attention_tile.h"

namespace longctx::cpu {
namespace {

using tile::kNegInf;
// Rows (query × group head) per work item, as in attention.cpp: 64 rows × 256 keys of
// scores (64 KiB) plus the gathered 256-key K and V (128 KiB each at D = 128) fit in L2.
constexpr int64_t kRowsPerItem = 64;
constexpr int64_t kKeyChunk = 256;
// Items with at least this many rows go through sgemm. Measured (one thread, D = 128, batch-1
// decode over 2048 keys, OpenBLAS SkylakeX kernels): 16 rows direct 0.38 ms vs sgemm 0.45 ms,
// 32 rows direct 0.79 ms vs sgemm 0.53 ms. Prefill (64-row items) is 2.5–3× faster through
// sgemm with tuned kernels (OpenBLAS's generic fallback is ~20% slower than the direct one).
constexpr int64_t kGemmMinRows = 24;
// Automatic flash-decoding: split items until there are ~kItemsPerThread per thread, but
// never into partitions below kMinPartitionKeys (the merge then costs more than it buys).
constexpr int64_t kItemsPerThread = 4;
constexpr int64_t kMinPartitionKeys = 256;

struct Shape {
  int64_t group;       // q heads per kv head
  int64_t q_per_item;  // queries per work item
  int64_t q_stride;    // elements between query tokens
  int64_t kv_stride;   // elements between cache slots = num_kv_heads · head_dim
  int64_t d, block_size;
  float scale;
};

struct WorkItem {
  int64_t seq, kv_head;
  int64_t q0, q1;        // queries [q0, q1) of the sequence
  int64_t k0, k1;        // keys (positions) [k0, k1) of this partition
  int64_t partial = -1;  // first row of this item's slot in the partial buffers; -1 = write to out
  int64_t cost = 0;      // rows × keys, for longest-first scheduling
};

// A (sequence, kv head, query block) whose keys were split into `parts` consecutive items;
// part k's rows sit at partial + k · rows in the partial buffers.
struct Split {
  int64_t seq, kv_head, q0, q1, partial, parts;
};

// Per-thread scratch, allocated once per call: scaled Q, the score/probability chunk, the
// running state, and (for the sgemm path) the gathered K and V of a chunk.
struct Scratch {
  std::vector<float> buf;
  float *q, *s, *o, *m, *l, *k, *v;
  Scratch(int64_t rows, int64_t d, bool gather) {
    const int64_t gathered = gather ? 2 * kKeyChunk * d : 0;
    buf.resize(static_cast<size_t>(rows * d * 2 + rows * kKeyChunk + rows * 2 + gathered));
    q = buf.data();
    s = q + rows * d;
    o = s + rows * kKeyChunk;
    m = o + rows * d;
    l = m + rows;
    k = l + rows;
    v = k + kKeyChunk * d;
  }
};

// Calls f(j, slot, len) for each run of keys [kb + j, kb + j + len) that is contiguous in the
// cache (one block, or the part of it inside [kb, kb + n)), starting at cache slot `slot`.
template <class F>
void for_each_run(const int32_t* table, int64_t block_size, int64_t kb, int64_t n, F&& f) {
  for (int64_t j = 0; j < n;) {
    const int64_t pos = kb + j, off = pos % block_size;
    const int64_t len = std::min(block_size - off, n - j);
    f(j, static_cast<int64_t>(table[pos / block_size]) * block_size + off, len);
    j += len;
  }
}

// s[r·lds + j] = qs_r · k_j for j < n (keys at stride ldk). Four keys per pass give four
// independent FMA chains per row instead of one latency-bound chain.
void scores_direct(const float* qs, int64_t rows, int64_t d, const float* k, int64_t ldk, int64_t n, float* s,
                   int64_t lds) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const float* k0 = k + j * ldk;
    const float* k1 = k0 + ldk;
    const float* k2 = k1 + ldk;
    const float* k3 = k2 + ldk;
    for (int64_t r = 0; r < rows; ++r) {
      const float* q = qs + r * d;
      float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
      for (int64_t c = 0; c < d; ++c) {
        a0 += q[c] * k0[c];
        a1 += q[c] * k1[c];
        a2 += q[c] * k2[c];
        a3 += q[c] * k3[c];
      }
      float* sr = s + r * lds + j;
      sr[0] = a0, sr[1] = a1, sr[2] = a2, sr[3] = a3;
    }
  }
  for (; j < n; ++j) {
    const float* kj = k + j * ldk;
    for (int64_t r = 0; r < rows; ++r) {
      const float* q = qs + r * d;
      float a = 0;
#pragma omp simd reduction(+ : a)
      for (int64_t c = 0; c < d; ++c) a += q[c] * kj[c];
      s[r * lds + j] = a;
    }
  }
}

// o_r += Σ_j p[r·lds + j] · v_j for j < n (values at stride ldv); four keys per pass so each
// o row is loaded and stored once per four keys.
void pv_direct(const float* p, int64_t lds, int64_t rows, const float* v, int64_t ldv, int64_t n, float* o,
               int64_t d) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const float* v0 = v + j * ldv;
    const float* v1 = v0 + ldv;
    const float* v2 = v1 + ldv;
    const float* v3 = v2 + ldv;
    for (int64_t r = 0; r < rows; ++r) {
      const float* pr = p + r * lds + j;
      const float p0 = pr[0], p1 = pr[1], p2 = pr[2], p3 = pr[3];
      float* orow = o + r * d;
#pragma omp simd
      for (int64_t c = 0; c < d; ++c) orow[c] += p0 * v0[c] + p1 * v1[c] + p2 * v2[c] + p3 * v3[c];
    }
  }
  for (; j < n; ++j) {
    const float* vj = v + j * ldv;
    for (int64_t r = 0; r < rows; ++r) {
      const float pj = p[r * lds + j];
      float* orow = o + r * d;
#pragma omp simd
      for (int64_t c = 0; c < d; ++c) orow[c] += pj * vj[c];
    }
  }
}

void attend_item(const PagedAttentionParams& p, const Shape& sh, const WorkItem& it, Scratch& ws,
                 float* partial_o, float* partial_lse) {
  const int64_t d = sh.d, g = it.kv_head;
  const int64_t rows =
      (it.q1 - it.q0) * sh.group;  // row r = (query q0 + r / group, head g·group + r % group)
  const int64_t q_token0 = p.q_begin[it.seq] + it.q0;
  // Position of the item's first query: the sequence's queries are its last tokens.
  const int64_t first_q_pos = p.context_lens[it.seq] - (p.q_begin[it.seq + 1] - p.q_begin[it.seq]) + it.q0;
  const int32_t* table = p.block_tables + it.seq * p.block_table_stride;
  const float* k_head = p.k_cache + g * d;
  const float* v_head = p.v_cache + g * d;
  const tile::RowState st{ws.o, ws.m, ws.l, rows, d};

  for (int64_t r = 0; r < rows; ++r) {
    const float* src = p.q + (q_token0 + r / sh.group) * sh.q_stride + (g * sh.group + r % sh.group) * d;
    for (int64_t c = 0; c < d; ++c) ws.q[r * d + c] = src[c] * sh.scale;
  }
  st.reset();

  for (int64_t kb = it.k0; kb < it.k1; kb += kKeyChunk) {
    const int64_t bk = std::min(kKeyChunk, it.k1 - kb);
    // Work items end their keys at the last query's position, so only the diagonal needs a mask.
    const bool needs_mask = p.causal && kb + bk - 1 > first_q_pos;
    const auto mask_row = [&](int64_t r, float* sr) {
      const int64_t visible = first_q_pos + r / sh.group - kb + 1;  // keys kb..qpos
      for (int64_t j = std::max<int64_t>(0, visible); j < bk; ++j) sr[j] = kNegInf;
    };
    if (rows >= kGemmMinRows) {
      for_each_run(table, sh.block_size, kb, bk, [&](int64_t j, int64_t slot, int64_t len) {
        for (int64_t t = 0; t < len; ++t) {
          std::copy_n(k_head + (slot + t) * sh.kv_stride, d, ws.k + (j + t) * d);
          std::copy_n(v_head + (slot + t) * sh.kv_stride, d, ws.v + (j + t) * d);
        }
      });
      tile::gemm_tile(ws.q, ws.k, d, ws.v, d, bk, ws.s, kKeyChunk, st, needs_mask, mask_row);
    } else {
      for_each_run(table, sh.block_size, kb, bk, [&](int64_t j, int64_t slot, int64_t len) {
        scores_direct(ws.q, rows, d, k_head + slot * sh.kv_stride, sh.kv_stride, len, ws.s + j, kKeyChunk);
      });
      if (needs_mask)
        for (int64_t r = 0; r < rows; ++r) mask_row(r, ws.s + r * kKeyChunk);
      tile::softmax_step(ws.s, kKeyChunk, bk, st);
      for_each_run(table, sh.block_size, kb, bk, [&](int64_t j, int64_t slot, int64_t len) {
        pv_direct(ws.s + j, kKeyChunk, rows, v_head + slot * sh.kv_stride, sh.kv_stride, len, ws.o, d);
      });
    }
  }

  for (int64_t r = 0; r < rows; ++r) {
    if (it.partial >= 0) {
      tile::finish_row(st, r, partial_o + (it.partial + r) * d, partial_lse + it.partial + r);
    } else {
      const int64_t row_out = (q_token0 + r / sh.group) * p.num_q_heads + g * sh.group + r % sh.group;
      tile::finish_row(st, r, p.out + row_out * d, p.lse ? p.lse + row_out : nullptr);
    }
  }
}

// Folds parts 1.. of a split into part 0 and scatters the result to out / lse.
void merge_split(const PagedAttentionParams& p, const Shape& sh, const Split& sp, float* partial_o,
                 float* partial_lse) {
  const int64_t d = sh.d;
  const int64_t rows = (sp.q1 - sp.q0) * sh.group;
  float* o0 = partial_o + sp.partial * d;
  float* lse0 = partial_lse + sp.partial;
  for (int64_t k = 1; k < sp.parts; ++k)
    merge_attention_states(o0, lse0, o0 + k * rows * d, lse0 + k * rows, o0, lse0, rows, d);
  const int64_t q_token0 = p.q_begin[sp.seq] + sp.q0;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t row_out = (q_token0 + r / sh.group) * p.num_q_heads + sp.kv_head * sh.group + r % sh.group;
    std::copy_n(o0 + r * d, d, p.out + row_out * d);
    if (p.lse) p.lse[row_out] = lse0[r];
  }
}

}  // namespace

void write_kv_cache(const float* k, const float* v, int64_t num_tokens, int64_t token_stride,
                    int64_t kv_width, const int64_t* slots, float* k_cache, float* v_cache) {
  if (token_stride == 0) token_stride = kv_width;
#pragma omp parallel for schedule(static) if (num_tokens * kv_width > (1 << 16))
  for (int64_t i = 0; i < num_tokens; ++i) {
    if (slots[i] < 0) continue;
    std::copy_n(k + i * token_stride, kv_width, k_cache + slots[i] * kv_width);
    std::copy_n(v + i * token_stride, kv_width, v_cache + slots[i] * kv_width);
  }
}

void paged_attention(const PagedAttentionParams& p) {
  if (p.num_seqs <= 0 || p.num_q_heads <= 0 || p.head_dim <= 0) return;
  if (p.num_kv_heads <= 0 || p.num_q_heads % p.num_kv_heads != 0)
    throw std::invalid_argument("paged_attention: num_q_heads " + std::to_string(p.num_q_heads) +
                                " must be a positive multiple of num_kv_heads " +
                                std::to_string(p.num_kv_heads));
  if (p.block_size < 1)
    throw std::invalid_argument("paged_attention: block_size " + std::to_string(p.block_size) +
                                " must be at least 1");
  Shape sh;
  sh.group = p.num_q_heads / p.num_kv_heads;
  sh.q_per_item = std::max<int64_t>(1, kRowsPerItem / sh.group);
  sh.q_stride = p.q_stride ? p.q_stride : p.num_q_heads * p.head_dim;
  sh.kv_stride = p.num_kv_heads * p.head_dim;
  sh.d = p.head_dim;
  sh.block_size = p.block_size;
  sh.scale = p.scale != 0.0f ? p.scale : static_cast<float>(1.0 / std::sqrt(static_cast<double>(p.head_dim)));

  // The unsplit items: every (sequence, query block, kv head). Under the causal mask an
  // item's keys end at its last query's position.
  std::vector<WorkItem> items;
  int64_t total_keys = 0, rows_max = 0;
  for (int64_t s = 0; s < p.num_seqs; ++s) {
    const int64_t nq = p.q_begin[s + 1] - p.q_begin[s], ctx = p.context_lens[s];
    for (int64_t q0 = 0; q0 < nq; q0 += sh.q_per_item) {
      const int64_t q1 = std::min(nq, q0 + sh.q_per_item);
      const int64_t kend = p.causal ? std::clamp<int64_t>(ctx - nq + q1, 0, ctx) : ctx;
      rows_max = std::max(rows_max, (q1 - q0) * sh.group);
      for (int64_t g = 0; g < p.num_kv_heads; ++g) {
        items.push_back({s, g, q0, q1, 0, kend});
        total_keys += kend;
      }
    }
  }
  if (items.empty()) return;

  // Partition size for flash-decoding, a whole number of blocks; 0 = no split.
  const int64_t threads = omp_get_max_threads();
  int64_t partition = 0;
  if (p.kv_partition_size > 0) {
    partition = p.kv_partition_size;
  } else if (threads > 1 && static_cast<int64_t>(items.size()) < kItemsPerThread * threads) {
    partition = std::max(kMinPartitionKeys,
                         (total_keys + kItemsPerThread * threads - 1) / (kItemsPerThread * threads));
  }
  partition = (partition + p.block_size - 1) / p.block_size * p.block_size;

  std::vector<WorkItem> work;
  std::vector<Split> splits;
  int64_t partial_rows = 0;
  work.reserve(items.size());
  for (const WorkItem& it : items) {
    const int64_t rows = (it.q1 - it.q0) * sh.group;
    if (partition == 0 || it.k1 <= partition) {
      work.push_back(it);
      work.back().cost = rows * (it.k1 + 1);
      continue;
    }
    const int64_t parts = (it.k1 + partition - 1) / partition;
    splits.push_back({it.seq, it.kv_head, it.q0, it.q1, partial_rows, parts});
    for (int64_t k = 0; k < parts; ++k) {
      WorkItem part = it;
      part.k0 = k * partition;
      part.k1 = std::min(it.k1, part.k0 + partition);
      part.partial = partial_rows + k * rows;
      part.cost = rows * (part.k1 - part.k0 + 1);
      work.push_back(part);
    }
    partial_rows += parts * rows;
  }
  // Longest first, then dynamic: the short tail evens out the threads.
  std::stable_sort(work.begin(), work.end(),
                   [](const WorkItem& a, const WorkItem& b) { return a.cost > b.cost; });
  std::vector<float> partial_o(static_cast<size_t>(partial_rows * p.head_dim));
  std::vector<float> partial_lse(static_cast<size_t>(partial_rows));
  const int64_t num_work = static_cast<int64_t>(work.size());
  const int64_t num_splits = static_cast<int64_t>(splits.size());

#pragma omp parallel if (num_work > 1)
  {
    Scratch ws(rows_max, p.head_dim, rows_max >= kGemmMinRows);
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < num_work; ++i)
      attend_item(p, sh, work[static_cast<size_t>(i)], ws, partial_o.data(), partial_lse.data());
      // The implicit barrier above: every partition is done before any merge reads it.
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < num_splits; ++i)
      merge_split(p, sh, splits[static_cast<size_t>(i)], partial_o.data(), partial_lse.data());
  }
}

}  // namespace longctx::cpu
