// Blocked online-softmax attention (FlashAttention-2, Dao 2023, Alg. 1) on the CPU:
// a work item is (block of queries, kv head); its rows are every (query, q head of the
// GQA group) pair, so one pass over a kv head's keys serves the whole group. Scores and
// P·V are small OpenBLAS sgemms (single-threaded inside our OpenMP region); the softmax
// between them runs in fp32 with a vectorisable exp.
#include "ops/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops/cpu/attention_tile.h"

namespace longctx::cpu {
namespace {

using tile::kNegInf;
// Rows (query × group head) per work item: 64 rows × 256 keys of scores (64 KiB) plus a
// 256-key K/V block (64 KiB at D = 64) stay in L2 between the two sgemms.
constexpr int64_t kRowsPerItem = 64;
constexpr int64_t kKeyBlock = 256;

struct ItemShape {
  int64_t group;       // q heads per kv head
  int64_t q_per_item;  // queries per work item
  int64_t q_stride, kv_stride;
  float scale;
};

// Per-thread scratch: gathered scaled Q, the score/probability block, the unnormalised
// output and the running max / sum of every row.
struct Scratch {
  std::vector<float> q, s, o, m, l;
  Scratch(int64_t rows, int64_t d)
      : q(static_cast<size_t>(rows * d)),
        s(static_cast<size_t>(rows * kKeyBlock)),
        o(static_cast<size_t>(rows * d)),
        m(static_cast<size_t>(rows)),
        l(static_cast<size_t>(rows)) {}
};

void attend_item(const AttentionParams& p, const ItemShape& sh, int64_t qb, int64_t g, Scratch& ws) {
  const int64_t d = p.head_dim;
  const int64_t i0 = qb * sh.q_per_item;
  const int64_t i1 = std::min(p.num_q, i0 + sh.q_per_item);
  const int64_t rows = (i1 - i0) * sh.group;  // row r = (query i0 + r / group, head g·group + r % group)
  float* qs = ws.q.data();
  float* s = ws.s.data();
  const tile::RowState st{ws.o.data(), ws.m.data(), ws.l.data(), rows, d};

  for (int64_t r = 0; r < rows; ++r) {
    const float* src = p.q + (i0 + r / sh.group) * sh.q_stride + (g * sh.group + r % sh.group) * d;
    for (int64_t c = 0; c < d; ++c) qs[r * d + c] = src[c] * sh.scale;
  }
  st.reset();

  // Keys past kend are invisible to every query of the item (contiguous positions only).
  int64_t kend = p.num_kv;
  if (p.causal && !p.kv_positions) kend = std::clamp<int64_t>(p.q_pos0 + i1 - p.kv_pos0, 0, p.num_kv);
  const int64_t first_q_pos = p.q_pos0 + i0, last_q_pos = p.q_pos0 + i1 - 1;

  for (int64_t kb = 0; kb < kend; kb += kKeyBlock) {
    const int64_t bk = std::min(kKeyBlock, kend - kb);
    bool needs_mask = false;
    if (p.causal) {
      int64_t min_pos, max_pos;
      if (p.kv_positions) {
        min_pos = max_pos = p.kv_positions[kb];
        for (int64_t j = 1; j < bk; ++j) {
          min_pos = std::min<int64_t>(min_pos, p.kv_positions[kb + j]);
          max_pos = std::max<int64_t>(max_pos, p.kv_positions[kb + j]);
        }
      } else {
        min_pos = p.kv_pos0 + kb;
        max_pos = p.kv_pos0 + kb + bk - 1;
      }
      if (min_pos > last_q_pos) continue;  // no query of the item sees any key of the block
      needs_mask = max_pos > first_q_pos;
    }
    const auto mask_row = [&](int64_t r, float* sr) {
      const int64_t qpos = p.q_pos0 + i0 + r / sh.group;
      if (p.kv_positions) {
        for (int64_t j = 0; j < bk; ++j)
          if (p.kv_positions[kb + j] > qpos) sr[j] = kNegInf;
      } else {
        for (int64_t j = std::max<int64_t>(0, qpos - p.kv_pos0 - kb + 1); j < bk; ++j) sr[j] = kNegInf;
      }
    };
    tile::gemm_tile(qs, p.k + kb * sh.kv_stride + g * d, sh.kv_stride, p.v + kb * sh.kv_stride + g * d,
                    sh.kv_stride, bk, s, kKeyBlock, st, needs_mask, mask_row);
  }

  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = i0 + r / sh.group, h = g * sh.group + r % sh.group;
    tile::finish_row(st, r, p.out + (i * p.num_q_heads + h) * d, p.lse + i * p.num_q_heads + h);
  }
}

}  // namespace

void attention(const AttentionParams& p) {
  if (p.num_q <= 0 || p.num_q_heads <= 0 || p.head_dim <= 0) return;
  if (p.num_kv_heads <= 0 || p.num_q_heads % p.num_kv_heads != 0)
    throw std::invalid_argument("attention: num_q_heads " + std::to_string(p.num_q_heads) +
                                " must be a positive multiple of num_kv_heads " +
                                std::to_string(p.num_kv_heads));
  ItemShape sh;
  sh.group = p.num_q_heads / p.num_kv_heads;
  sh.q_per_item = std::max<int64_t>(1, kRowsPerItem / sh.group);
  sh.q_stride = p.q_stride ? p.q_stride : p.num_q_heads * p.head_dim;
  sh.kv_stride = p.kv_stride ? p.kv_stride : p.num_kv_heads * p.head_dim;
  sh.scale = p.scale != 0.0f ? p.scale : static_cast<float>(1.0 / std::sqrt(static_cast<double>(p.head_dim)));
  const int64_t num_blocks = (p.num_q + sh.q_per_item - 1) / sh.q_per_item;
  const int64_t items = num_blocks * p.num_kv_heads;
  const int64_t rows_max = sh.q_per_item * sh.group;
  // Scratch is allocated per call and per thread (~150 KiB at D = 128): a call does
  // O(num_q·num_kv·D) work, so the allocation is noise, and the kernel keeps no state.
#pragma omp parallel if (items > 1)
  {
    Scratch ws(rows_max, p.head_dim);
    // Later query blocks see more keys under the causal mask: hand them out first.
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < items; ++it)
      attend_item(p, sh, num_blocks - 1 - it / p.num_kv_heads, it % p.num_kv_heads, ws);
  }
}

void merge_attention_states(const float* o_a, const float* lse_a, const float* o_b, const float* lse_b,
                            float* o_out, float* lse_out, int64_t rows, int64_t head_dim) {
#pragma omp parallel for schedule(static) if (rows * head_dim > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    const float a = lse_a[r], b = lse_b[r];  // read both before lse_out (may alias lse_a) is written
    const float* oa = o_a + r * head_dim;
    const float* ob = o_b + r * head_dim;
    float* dst = o_out + r * head_dim;
    if (a == kNegInf && b == kNegInf) {
      std::fill(dst, dst + head_dim, 0.0f);
      lse_out[r] = kNegInf;
    } else if (b == kNegInf) {  // copy, never multiply: an empty side's o may be garbage
      if (dst != oa) std::copy(oa, oa + head_dim, dst);
      lse_out[r] = a;
    } else if (a == kNegInf) {
      if (dst != ob) std::copy(ob, ob + head_dim, dst);
      lse_out[r] = b;
    } else {
      // Weights in double: lse = max + log(e^(a−max) + e^(b−max)).
      const double mx = std::max(a, b);
      const double wa = std::exp(a - mx), wb = std::exp(b - mx), sum = wa + wb;
      const float fa = static_cast<float>(wa / sum), fb = static_cast<float>(wb / sum);
      for (int64_t c = 0; c < head_dim; ++c) dst[c] = fa * oa[c] + fb * ob[c];
      lse_out[r] = static_cast<float>(mx + std::log(sum));
    }
  }
}

}  // namespace longctx::cpu
