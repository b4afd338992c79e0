#include <algorithm>
#include <atomic>
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "ops/cuda/common.cuh"
#include "ops/cuda/paged_attention.h"
#include "ops/cuda/paged_attention_params.cuh"
#include "ops/cuda/paged_prefill_sm90.h"

namespace longctx::cuda {
namespace {

constexpr int kBlockN = 64;  // keys per shared-memory tile
#ifndef LONGCTX_PREFILL_MT
#define LONGCTX_PREFILL_MT 2
#endif
constexpr int kPrefillMT = LONGCTX_PREFILL_MT;  // m16 tiles per warp in the prefill shape
using detail::kLog2e;
constexpr float kLn2 = 0.6931471805599453f;

// What the kernel reads; a plain value passed by copy (no host pointers inside).
struct KernelParams {
  const __nv_bfloat16* q;
  int64_t q_stride;
  __nv_bfloat16* out;
  float* lse;
  const __nv_bfloat16* k_cache;
  const __nv_bfloat16* v_cache;
  const int64_t* q_begin;
  const int64_t* context_lens;
  const int32_t* block_tables;
  int64_t block_table_stride;
  int32_t block_size;
  int32_t num_q_heads, num_kv_heads, group;
  float scale_log2;  // scale · log2(e): scores live in the exp2 domain
  bool causal;
  const int32_t* causal_lens;  // PagedAttentionParams::causal_lens
  int32_t num_splits;
  int64_t partition;  // keys per split (a multiple of kBlockN); huge when num_splits == 1
  // Automatic decode splits: each block sizes its partition from its own row's visible keys
  // (ceil(keys / num_splits), whole key tiles), not from `partition`. The plan's
  // max_context_len can be far above the real contexts — a decode graph's bucket is the next
  // power of two — and partitions sized for it would leave half the splits without keys.
  bool split_by_context;
  // fp32 rows, written instead of `out` when non-null: the splits' partial outputs
  // (normalised) [num_splits, total_q · Hq, D] and LSEs [num_splits, total_q · Hq] in the
  // workspace, or — one split and PagedAttentionParams::out_f32 — the caller's output and lse
  // (ws_lse may then be null).
  float* ws_o;
  float* ws_lse;
  float* out_f32;      // PagedAttentionParams::out_f32 (the split merge's output), or null
  int64_t total_rows;  // total_q · Hq
};

// ---- PTX wrappers (sm_80+: cp.async, ldmatrix, mma.sync) ----

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte global→shared copy; src_bytes = 0 writes zeros and reads nothing.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

// d += a·b, m16n8k16, bf16 inputs, fp32 accumulators.
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// Element offset of 16-byte chunk c of row r in a [rows][D] bf16 tile. XOR-swizzling the
// chunk with r mod 8 puts the 8 row addresses of one ldmatrix in 8 different bank groups
// (rows are 128 or 256 bytes: without it all 8 hit the same banks, an 8-way conflict).
// Rows of fewer than 8 chunks (d 16, 32: the test models) XOR with r mod chunks, which
// keeps every chunk inside its row; those rows span few banks anyway.
template <int D>
__device__ __forceinline__ int swz(int r, int c) {
  constexpr int kMask = D / 8 >= 8 ? 7 : D / 8 - 1;
  return r * D + ((c ^ (r & kMask)) << 3);
}

// One thread block = (row tile, kv head, sequence × split). WM warps along the query rows
// (MT m16 tiles = 16·MT rows each), WN warps splitting each key tile (kBlockN / WN keys
// each). Prefill: 4×1 warps with MT = 2 (FlashAttention-2's 128-row tile: each K/V fragment
// read from shared memory feeds two MMAs; Q is re-read from shared memory per k-step to stay
// under 255 registers); decode: 1×4 warps, MT = 1, Q kept in registers.
// Rows are (token, q head of the group) pairs: row r → token r / G, head h·G + r % G.
template <int D, int WM, int WN, int MT>
__global__ void __launch_bounds__(32 * WM * WN) paged_attention_kernel(const KernelParams p) {
  constexpr int NT = 32 * WM * WN;
  constexpr int BM = 16 * WM * MT;
  static_assert(WN == 1 || MT == 1, "the cross-warp merge handles one m16 tile per warp");
  constexpr int KW = kBlockN / WN;  // keys per warp per tile
  constexpr int NTILE = KW / 8;     // n8 tiles of S per warp
  constexpr int CH = D / 8;         // 16-byte chunks per row
  static_assert(KW % 16 == 0, "each warp needs whole k16 steps of P·V");

  extern __shared__ __align__(128) unsigned char smem_raw[];
  __nv_bfloat16* q_s = reinterpret_cast<__nv_bfloat16*>(smem_raw);
  __nv_bfloat16* k_s = q_s + BM * D;           // [2][kBlockN][D]
  __nv_bfloat16* v_s = k_s + 2 * kBlockN * D;  // [2][kBlockN][D]

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / WN, wn = warp % WN;
  const int seq = blockIdx.z / p.num_splits, split = blockIdx.z % p.num_splits;
  const int h = blockIdx.y;
  const int64_t G = p.group;
  const int64_t qb = p.q_begin[seq];
  const int64_t nq = p.q_begin[seq + 1] - qb;
  const int64_t rows = nq * G;
  const int64_t r0 = static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * BM;  // late (heavy) rows first
  if (r0 >= rows) return;
  const int64_t ctx = p.context_lens[seq];
  const int64_t qpos0 = ctx - nq;  // position of the sequence's first query token
  // Keys [0, q_end(r)) are visible to row r (causal): its position + 1, or causal_lens.
  auto q_end = [&](int64_t r) -> int64_t {
    return p.causal_lens ? p.causal_lens[qb + min(r / G, nq - 1)] : qpos0 + r / G + 1;
  };
  const int64_t r_last = min(r0 + BM, rows) - 1;
  const int64_t kv_end = p.causal ? min(ctx, q_end(r_last)) : ctx;
  const int64_t part = p.split_by_context
                           ? ((kv_end + p.num_splits - 1) / p.num_splits + kBlockN - 1) / kBlockN * kBlockN
                           : p.partition;
  const int64_t kv_lo = static_cast<int64_t>(split) * part;
  const int64_t kv_hi = min(kv_end, kv_lo + part);
  const int n_tiles = kv_hi > kv_lo ? static_cast<int>((kv_hi - kv_lo + kBlockN - 1) / kBlockN) : 0;
  const int32_t* btab = p.block_tables + seq * p.block_table_stride;
  // Key positions as 32-bit ints in the loop (registers are the prefill kernel's limit).
  const int kv_lo32 = static_cast<int>(kv_lo), kv_hi32 = static_cast<int>(kv_hi);
  const int min_qpos32 = static_cast<int>(q_end(r0) - 1);  // tiles ending at or before it: no causal mask

  auto load_kv = [&](int tile, int stage) {
    const int64_t k0 = kv_lo + static_cast<int64_t>(tile) * kBlockN;
    __nv_bfloat16* ks = k_s + stage * kBlockN * D;
    __nv_bfloat16* vs = v_s + stage * kBlockN * D;
#pragma unroll
    for (int i = tid; i < kBlockN * CH; i += NT) {
      const int r = i / CH, c = i % CH;
      const int64_t pos = k0 + r;
      int64_t off = 0;
      const bool ok = pos < kv_hi;
      if (ok) {
        const int32_t pos32 = static_cast<int32_t>(pos);
        const int64_t slot =
            static_cast<int64_t>(btab[pos32 / p.block_size]) * p.block_size + pos32 % p.block_size;
        off = (slot * p.num_kv_heads + h) * D + c * 8;
      }
      cp_async16(ks + swz<D>(r, c), p.k_cache + off, ok ? 16 : 0);
      cp_async16(vs + swz<D>(r, c), p.v_cache + off, ok ? 16 : 0);
    }
  };

  // Per thread, m16 tile mt: rows lr0[mt] = (wm·MT + mt)·16 + lane/4 and lr0 + 8 of the
  // block's rows, in m/l index [mt][0] and [mt][1].
  float acc_o[MT][D / 8][4];
  float m_run[MT][2], l_run[MT][2];
  int lr0[MT];
  int qpos_row[MT][2];  // positions fit in 32 bits (contexts < 2^31 tokens): fewer registers
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int i = 0; i < D / 8; ++i)
      acc_o[mt][i][0] = acc_o[mt][i][1] = acc_o[mt][i][2] = acc_o[mt][i][3] = 0.0f;
    lr0[mt] = (wm * MT + mt) * 16 + (lane >> 2);
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      m_run[mt][i] = -INFINITY;
      l_run[mt][i] = 0.0f;
      qpos_row[mt][i] = static_cast<int>(q_end(r0 + lr0[mt] + 8 * i) - 1);
    }
  }

  if (n_tiles > 0) {
    // Q tile (zeros past the last row) and the first K/V tile: one cp.async group.
    for (int i = tid; i < BM * CH; i += NT) {
      const int r = i / CH, c = i % CH;
      const int64_t rr = r0 + r;
      const bool ok = rr < rows;
      int64_t off = 0;
      if (ok) off = (qb + rr / G) * p.q_stride + (h * G + rr % G) * D + c * 8;
      cp_async16(q_s + swz<D>(r, c), p.q + off, ok ? 16 : 0);
    }
    load_kv(0, 0);
    cp_async_commit();
  }

  uint32_t qf[MT == 1 ? D / 16 : 1][4];  // Q in registers only when MT == 1
  auto q_frag = [&](uint32_t(&f)[4], int mt, int kk) {
    ldmatrix_x4(f,
                q_s + swz<D>((wm * MT + mt) * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, kk * 2 + (lane >> 4)));
  };
  for (int j = 0; j < n_tiles; ++j) {
    const int stage = j & 1;
    if (j + 1 < n_tiles) {
      load_kv(j + 1, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if constexpr (MT == 1) {
      if (j == 0) {
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) q_frag(qf[kk], 0, kk);
      }
    }
    const __nv_bfloat16* ks = k_s + stage * kBlockN * D;
    const __nv_bfloat16* vs = v_s + stage * kBlockN * D;

    // S = Q·Kᵀ for this warp's KW keys.
    float s[MT][NTILE][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NTILE; ++nt) s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t qk[MT][4];
      if constexpr (MT > 1) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) q_frag(qk[mt], mt, kk);
      }
#pragma unroll
      for (int np = 0; np < NTILE / 2; ++np) {
        uint32_t b[4];
        ldmatrix_x4(
            b, ks + swz<D>(wn * KW + np * 16 + (lane & 7) + (lane >> 4) * 8, kk * 2 + ((lane >> 3) & 1)));
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          const uint32_t(&a)[4] = MT == 1 ? qf[MT == 1 ? kk : 0] : qk[mt];
          mma_bf16(s[mt][2 * np], a, b[0], b[1]);
          mma_bf16(s[mt][2 * np + 1], a, b[2], b[3]);
        }
      }
    }

    // Scale into the exp2 domain; mask keys past kv_hi and (causal) after the row's position.
    const int k0 = kv_lo32 + j * kBlockN;
    const int kbase = k0 + wn * KW + (lane & 3) * 2;
    const bool need_mask = k0 + kBlockN > kv_hi32 || (p.causal && k0 + kBlockN - 1 > min_qpos32);
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NTILE; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          float x = s[mt][nt][e] * p.scale_log2;
          if (need_mask) {
            const int kp = kbase + nt * 8 + (e & 1);
            if (kp >= kv_hi32 || (p.causal && kp > qpos_row[mt][e >> 1])) x = -INFINITY;
          }
          s[mt][nt][e] = x;
        }
      }

      // Online softmax (FlashAttention-2): per row, new max over the quad's 4 threads, rescale.
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        float mx = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < NTILE; ++nt) mx = fmaxf(mx, fmaxf(s[mt][nt][2 * i], s[mt][nt][2 * i + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_new = fmaxf(m_run[mt][i], mx);
        const float base = m_new == -INFINITY ? 0.0f : m_new;  // all masked so far: no inf − inf
        const float alpha = exp2f(m_run[mt][i] - base);
        m_run[mt][i] = m_new;
        float rs = 0.0f;
#pragma unroll
        for (int nt = 0; nt < NTILE; ++nt) {
          s[mt][nt][2 * i] = exp2f(s[mt][nt][2 * i] - base);
          s[mt][nt][2 * i + 1] = exp2f(s[mt][nt][2 * i + 1] - base);
          rs += s[mt][nt][2 * i] + s[mt][nt][2 * i + 1];
        }
        l_run[mt][i] = l_run[mt][i] * alpha + rs;  // this thread's columns only; the quad sums at the end
#pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) {
          acc_o[mt][dt][2 * i] *= alpha;
          acc_o[mt][dt][2 * i + 1] *= alpha;
        }
      }

      // O += P·V: the S accumulators are already the A fragments of P (bf16).
#pragma unroll
    for (int ks16 = 0; ks16 < KW / 16; ++ks16) {
      uint32_t a[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        a[mt][0] = pack_bf16(s[mt][2 * ks16][0], s[mt][2 * ks16][1]);
        a[mt][1] = pack_bf16(s[mt][2 * ks16][2], s[mt][2 * ks16][3]);
        a[mt][2] = pack_bf16(s[mt][2 * ks16 + 1][0], s[mt][2 * ks16 + 1][1]);
        a[mt][3] = pack_bf16(s[mt][2 * ks16 + 1][2], s[mt][2 * ks16 + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t b[4];
        ldmatrix_x4_trans(
            b, vs + swz<D>(wn * KW + ks16 * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, dp * 2 + (lane >> 4)));
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma_bf16(acc_o[mt][2 * dp], a[mt], b[0], b[1]);
          mma_bf16(acc_o[mt][2 * dp + 1], a[mt], b[2], b[3]);
        }
      }
    }
    __syncthreads();  // this stage is reloaded next iteration
  }
  // The keys are read: let a dependent launch (the split merge, launched with programmatic
  // stream serialization) be scheduled now; its griddepcontrol.wait still waits for this
  // grid to finish and its writes to be visible.
  asm volatile("griddepcontrol.launch_dependents;\n" ::);

#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      l_run[mt][i] += __shfl_xor_sync(0xffffffffu, l_run[mt][i], 1);
      l_run[mt][i] += __shfl_xor_sync(0xffffffffu, l_run[mt][i], 2);
    }

  // Row rr of this tile → (token, q head) → output row index R = token · Hq + head.
  auto out_row = [&](int64_t rr) { return (qb + rr / G) * p.num_q_heads + h * G + rr % G; };
  const bool f32_out = p.ws_o != nullptr;  // split partials, or the caller's fp32 output

  if constexpr (WN == 1) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int64_t rr = r0 + lr0[mt] + 8 * i;
        if (rr >= rows) continue;
        const int64_t R = out_row(rr);
        const bool any = l_run[mt][i] > 0.0f;
        const float inv = any ? 1.0f / l_run[mt][i] : 0.0f;
        const float lse = any ? (m_run[mt][i] + log2f(l_run[mt][i])) * kLn2 : -INFINITY;
        const int col = (lane & 3) * 2;
        if (f32_out) {
          float* o = p.ws_o + (static_cast<int64_t>(split) * p.total_rows + R) * D;
#pragma unroll
          for (int dt = 0; dt < D / 8; ++dt)
            *reinterpret_cast<float2*>(o + dt * 8 + col) =
                make_float2(acc_o[mt][dt][2 * i] * inv, acc_o[mt][dt][2 * i + 1] * inv);
          if ((lane & 3) == 0 && p.ws_lse) p.ws_lse[static_cast<int64_t>(split) * p.total_rows + R] = lse;
        } else {
          __nv_bfloat16* o = p.out + R * D;
#pragma unroll
          for (int dt = 0; dt < D / 8; ++dt)
            *reinterpret_cast<__nv_bfloat162*>(o + dt * 8 + col) =
                __floats2bfloat162_rn(acc_o[mt][dt][2 * i] * inv, acc_o[mt][dt][2 * i + 1] * inv);
          if ((lane & 3) == 0 && p.lse) p.lse[R] = lse;
        }
      }
  } else {
    // The WN warps saw disjoint keys of the same 16 rows: merge their states through shared
    // memory (the K/V tiles are free: the loop ended with a barrier, or never ran).
    float* o_sh = reinterpret_cast<float*>(k_s);  // [WN][16][D] unnormalised
    float* m_sh = o_sh + WN * 16 * D;             // [WN][16]
    float* l_sh = m_sh + WN * 16;                 // [WN][16]
    const int lr = lane >> 2, col = (lane & 3) * 2;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt)
        *reinterpret_cast<float2*>(o_sh + (wn * 16 + lr + 8 * i) * D + dt * 8 + col) =
            make_float2(acc_o[0][dt][2 * i], acc_o[0][dt][2 * i + 1]);
      if ((lane & 3) == 0) {
        m_sh[wn * 16 + lr + 8 * i] = m_run[0][i];
        l_sh[wn * 16 + lr + 8 * i] = l_run[0][i];
      }
    }
    __syncthreads();
    // Thread t: row t / (NT/16), columns strided by NT/16.
    constexpr int TPR = NT / 16;  // threads per row
    const int r = tid / TPR;
    const int64_t rr = r0 + r;
    if (rr < rows) {
      float mx = -INFINITY;
#pragma unroll
      for (int w = 0; w < WN; ++w) mx = fmaxf(mx, m_sh[w * 16 + r]);
      float wgt[WN], L = 0.0f;
#pragma unroll
      for (int w = 0; w < WN; ++w) {
        wgt[w] = mx == -INFINITY ? 0.0f : exp2f(m_sh[w * 16 + r] - mx);
        L += wgt[w] * l_sh[w * 16 + r];
      }
      const bool any = L > 0.0f;
      const float inv = any ? 1.0f / L : 0.0f;
      const float lse = any ? (mx + log2f(L)) * kLn2 : -INFINITY;
      const int64_t R = out_row(rr);
      for (int d = (tid % TPR) * 2; d < D; d += TPR * 2) {
        float o0 = 0.0f, o1 = 0.0f;
#pragma unroll
        for (int w = 0; w < WN; ++w) {
          const float2 v = *reinterpret_cast<const float2*>(o_sh + (w * 16 + r) * D + d);
          o0 += wgt[w] * v.x;
          o1 += wgt[w] * v.y;
        }
        if (f32_out)
          *reinterpret_cast<float2*>(p.ws_o + (static_cast<int64_t>(split) * p.total_rows + R) * D + d) =
              make_float2(o0 * inv, o1 * inv);
        else
          *reinterpret_cast<__nv_bfloat162*>(p.out + R * D + d) = __floats2bfloat162_rn(o0 * inv, o1 * inv);
      }
      if (tid % TPR == 0) {
        if (f32_out) {
          if (p.ws_lse) p.ws_lse[static_cast<int64_t>(split) * p.total_rows + R] = lse;
        } else if (p.lse) {
          p.lse[R] = lse;
        }
      }
    }
  }
}

constexpr int kMergeThreads = 128;

// Merges the num_splits partial states of each output row: the n-way form of
// merge_attention_states; splits with lse = −inf (no visible key) drop out. One block per
// row: the splits are dealt to groups of D/4 threads (a float4 of the row each); a group loads
// 4 splits' lse and o at once and folds them in with FlashAttention's rescaling (running max
// m, l = Σ exp(lse − m), acc = Σ exp(lse − m)·o), then the groups' states meet in shared
// memory. One L2 round trip per 4 splits per group; the first version (one warp walking a
// row's splits in turn) paid one per split: ~25 µs of a 100 µs 32K decode at 86 splits.
// OutT: bf16 (the attention's output) or float (PagedAttentionParams::out_f32: the same
// values before the rounding).
template <int D, typename OutT>
__global__ void __launch_bounds__(kMergeThreads)
    merge_splits_kernel(const float* ws_o, const float* ws_lse, int num_splits, int64_t total_rows, OutT* out,
                        float* lse_out) {
  constexpr int TPS = D / 4;               // threads per split (one float4 each)
  constexpr int NG = kMergeThreads / TPS;  // splits handled at once
  constexpr int U = 4;                     // splits per group per round
  __shared__ float m_sh[NG], l_sh[NG];
  __shared__ float4 part[NG][TPS];
  const int64_t R = blockIdx.x;
  const int tid = threadIdx.x, g = tid / TPS, c = tid % TPS;
  asm volatile("griddepcontrol.wait;\n" ::: "memory");  // the partials are complete and visible
  float m = -INFINITY, l = 0.0f;
  float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  for (int s0 = g; s0 < num_splits; s0 += NG * U) {
    float ls[U];
    float4 v[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int s = s0 + u * NG;
      ls[u] = -INFINITY;
      v[u] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (s < num_splits) {  // every split's row is written (o = 0 where lse = −inf)
        ls[u] = ws_lse[s * total_rows + R];
        v[u] = *reinterpret_cast<const float4*>(ws_o + (s * total_rows + R) * D + c * 4);
      }
    }
    float mb = m;
#pragma unroll
    for (int u = 0; u < U; ++u) mb = fmaxf(mb, ls[u]);
    if (mb == -INFINITY) continue;   // no visible key so far
    const float a = __expf(m - mb);  // 0 while m = −inf
    l *= a;
    acc.x *= a;
    acc.y *= a;
    acc.z *= a;
    acc.w *= a;
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (ls[u] == -INFINITY) continue;  // its o drops out unread
      const float w = __expf(ls[u] - mb);
      l += w;
      acc.x += w * v[u].x;
      acc.y += w * v[u].y;
      acc.z += w * v[u].z;
      acc.w += w * v[u].w;
    }
    m = mb;
  }
  if (c == 0) {
    m_sh[g] = m;
    l_sh[g] = l;
  }
  part[g][c] = acc;
  __syncthreads();
  if (tid < TPS) {
    float M = -INFINITY;
#pragma unroll
    for (int k = 0; k < NG; ++k) M = fmaxf(M, m_sh[k]);
    float L = 0.0f;
    float4 o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (M != -INFINITY) {
#pragma unroll
      for (int k = 0; k < NG; ++k) {
        if (m_sh[k] == -INFINITY) continue;
        const float w = __expf(m_sh[k] - M);
        L += w * l_sh[k];
        o.x += w * part[k][tid].x;
        o.y += w * part[k][tid].y;
        o.z += w * part[k][tid].z;
        o.w += w * part[k][tid].w;
      }
    }
    const float inv = L > 0.0f ? 1.0f / L : 0.0f;
    if constexpr (std::is_same_v<OutT, float>) {
      *reinterpret_cast<float4*>(out + R * D + tid * 4) =
          make_float4(o.x * inv, o.y * inv, o.z * inv, o.w * inv);
    } else {
      __nv_bfloat162* dst = reinterpret_cast<__nv_bfloat162*>(out + R * D + tid * 4);
      dst[0] = __floats2bfloat162_rn(o.x * inv, o.y * inv);
      dst[1] = __floats2bfloat162_rn(o.z * inv, o.w * inv);
    }
    if (tid == 0 && lse_out) lse_out[R] = L > 0.0f ? M + __logf(L) : -INFINITY;
  }
}

struct Plan {
  bool decode;
  int m_blocks;
  int num_splits;
  int64_t partition;
  bool split_by_context;  // the kernel sizes partitions from each row's keys (KernelParams)
};

constexpr int kDecodeThreads = 128;                   // the decode shape: 1 × 4 warps
constexpr int64_t kMinDecodePartition = 4 * kBlockN;  // shorter partitions are not worth a merge
constexpr int kMaxCachedDevices = 64;

template <int D, int WM, int MT>
constexpr size_t smem_bytes() {
  return static_cast<size_t>(16 * WM * MT * D + 4 * kBlockN * D) * sizeof(__nv_bfloat16);
}

// Raises the kernel's dynamic shared-memory limit once per device (the attribute is set per
// context and never changes; setting it on every call cost host time in each decode step).
template <typename Kernel>
cudaError_t set_smem_limit_once(Kernel kernel, size_t smem, std::atomic<uint64_t>& done) {
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e != cudaSuccess) return e;
  const uint64_t bit = dev < kMaxCachedDevices ? uint64_t{1} << dev : 0;
  if (bit && (done.load(std::memory_order_relaxed) & bit)) return cudaSuccess;
  e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  if (e == cudaSuccess && bit) done.fetch_or(bit, std::memory_order_relaxed);
  return e;
}

template <int D, int WM, int WN, int MT>
std::atomic<uint64_t>& smem_limit_done() {
  static std::atomic<uint64_t> done{0};
  return done;
}

// The current device's SM count and how many decode-shape thread blocks fit on one SM (the
// occupancy calculator), cached per device and head_dim.
struct DecodeOccupancy {
  int64_t sms, per_sm;
};

template <int D>
DecodeOccupancy decode_occupancy_d(int dev) {
  static std::atomic<int64_t> cache[kMaxCachedDevices];  // sms << 16 | per_sm; 0 = unknown
  if (dev < kMaxCachedDevices) {
    const int64_t c = cache[dev].load(std::memory_order_relaxed);
    if (c > 0) return {c >> 16, c & 0xffff};
  }
  auto kernel = paged_attention_kernel<D, 1, 4, 1>;
  constexpr size_t smem = smem_bytes<D, 1, 1>();
  int sms = 132, per_sm = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  if (set_smem_limit_once(kernel, smem, smem_limit_done<D, 1, 4, 1>()) != cudaSuccess ||
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kDecodeThreads, smem) != cudaSuccess ||
      per_sm < 1)
    per_sm = 1;
  if (dev < kMaxCachedDevices) cache[dev].store(int64_t{sms} << 16 | per_sm, std::memory_order_relaxed);
  return {sms, per_sm};
}

DecodeOccupancy decode_occupancy(int64_t head_dim) {
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return {132, 1};
  switch (head_dim) {
    case 16: return decode_occupancy_d<16>(dev);
    case 32: return decode_occupancy_d<32>(dev);
    case 64: return decode_occupancy_d<64>(dev);
    default: return decode_occupancy_d<128>(dev);
  }
}

Plan make_plan(const PagedAttentionParams& p) {
  Plan pl{};
  pl.decode = p.max_num_q <= 1;
  const int bm = pl.decode ? 16 : 64 * kPrefillMT;
  const int64_t G = p.num_q_heads / p.num_kv_heads;
  pl.m_blocks = static_cast<int>(std::max<int64_t>(1, (std::max<int64_t>(p.max_num_q, 1) * G + bm - 1) / bm));
  const int64_t ctx = std::max<int64_t>(p.max_context_len, 1);
  const int64_t work = static_cast<int64_t>(pl.m_blocks) * p.num_kv_heads * p.num_seqs;
  int64_t part = 0;
  if (p.kv_partition_size > 0) {
    part = (p.kv_partition_size + kBlockN - 1) / kBlockN * kBlockN;
  } else if (pl.decode) {
    // Decode streams the K/V bytes. Split each (sequence, kv head) into partitions so the
    // blocks fill the SMs evenly, k on every SM: k = 256 / head_dim, at most what fits (at
    // d 128, 2 blocks of up to two 32 KB K+V tiles in flight each; smaller d: more, smaller
    // blocks — not measured). H100, d 128, graph replays (docs/cuda.md, partition sweep): one
    // sequence × 32K at 256 blocks (2 per SM) 2383 GB/s; at 376 (3 on 112 SMs, 2 on 20) 2314;
    // at 512 (1.3 waves of 396) 1840; at 688 (1.7 waves, the old ~2-waves rule) 2112; at 176
    // (1 or 2 per SM) 1868. When k per SM leaves fewer than 2 partitions, fill one whole wave.
    const DecodeOccupancy occ = decode_occupancy(p.head_dim);
    const int64_t k = std::min<int64_t>(occ.per_sm, std::max<int64_t>(1, 256 / p.head_dim));
    int64_t want = k * occ.sms / work;
    if (want < 2) want = occ.per_sm * occ.sms / work;
    want = std::min<int64_t>(want, ctx / kMinDecodePartition);
    if (want > 1) {
      part = (ctx + want - 1) / want;
      part = (part + kBlockN - 1) / kBlockN * kBlockN;
      pl.split_by_context = true;  // the count is planned here, the sizes per sequence
    }
  } else {
    int dev = 0, sms = 132;
    if (cudaGetDevice(&dev) == cudaSuccess) cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    // ~2 waves of 2 blocks per SM; splitting a short context is not worth a merge pass.
    const int64_t target = 2LL * sms * 2;
    if (work < target && ctx > 4 * kBlockN) {
      const int64_t want = std::min<int64_t>((target + work - 1) / work, ctx / (4 * kBlockN));
      part = (ctx + want - 1) / want;
      part = (part + kBlockN - 1) / kBlockN * kBlockN;
    }
  }
  int64_t splits = part > 0 ? (ctx + part - 1) / part : 1;
  const int64_t max_z = 65535 / std::max<int64_t>(p.num_seqs, 1);
  if (splits > max_z) {  // grid.z limit: fewer, longer partitions
    splits = max_z;
    part = ((ctx + splits - 1) / splits + kBlockN - 1) / kBlockN * kBlockN;
    splits = (ctx + part - 1) / part;
  }
  pl.num_splits = static_cast<int>(std::max<int64_t>(splits, 1));
  pl.partition = pl.num_splits > 1 ? part : (int64_t{1} << 62);
  return pl;
}

void validate(const PagedAttentionParams& p) {
  auto fail = [](const std::string& what) { throw std::invalid_argument("paged_attention: " + what); };
  if (p.num_kv_heads <= 0 || p.num_q_heads <= 0 || p.num_q_heads % p.num_kv_heads != 0)
    fail("num_q_heads " + std::to_string(p.num_q_heads) + " must be a positive multiple of num_kv_heads " +
         std::to_string(p.num_kv_heads));
  if (p.head_dim != 16 && p.head_dim != 32 && p.head_dim != 64 && p.head_dim != 128)
    fail("head_dim " + std::to_string(p.head_dim) + " must be 16, 32, 64 or 128");
  if (p.block_size < 1) fail("block_size must be >= 1");
  const int64_t qs = p.q_stride ? p.q_stride : p.num_q_heads * p.head_dim;
  if (qs % 8 != 0) fail("q_stride must be a multiple of 8 (16-byte rows)");
}

template <int D, int WM, int WN, int MT>
cudaError_t launch(const KernelParams& kp, const Plan& pl, int num_seqs, int num_kv_heads,
                   cudaStream_t stream) {
  constexpr size_t smem = smem_bytes<D, WM, MT>();
  auto kernel = paged_attention_kernel<D, WM, WN, MT>;
  cudaError_t e = set_smem_limit_once(kernel, smem, smem_limit_done<D, WM, WN, MT>());
  if (e != cudaSuccess) return e;
  const dim3 grid(static_cast<unsigned>(pl.m_blocks), static_cast<unsigned>(num_kv_heads),
                  static_cast<unsigned>(num_seqs * pl.num_splits));
  kernel<<<grid, 32 * WM * WN, smem, stream>>>(kp);
  return cudaGetLastError();
}

// The attention kernel in the decode or prefill shape, then (when the keys were split)
// the merge of the partitions.
template <int D>
cudaError_t launch_d(const KernelParams& kp, const Plan& pl, int ns, int hkv, cudaStream_t stream) {
  cudaError_t e = pl.decode ? launch<D, 1, 4, 1>(kp, pl, ns, hkv, stream)
                            : launch<D, 4, 1, kPrefillMT>(kp, pl, ns, hkv, stream);
  if (e != cudaSuccess || pl.num_splits <= 1) return e;
  // Programmatic dependent launch (sm_90): the merge is launched while the attention grid
  // drains instead of after it, hiding the launch gap between the two (~1–2 µs of a 60 µs
  // 32K decode); the merge waits (griddepcontrol.wait) before reading the partials.
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(static_cast<unsigned>(kp.total_rows));
  cfg.blockDim = dim3(kMergeThreads);
  cfg.stream = stream;
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  const auto* ws_o = static_cast<const float*>(kp.ws_o);
  const auto* ws_lse = static_cast<const float*>(kp.ws_lse);
  if (kp.out_f32)
    return cudaLaunchKernelEx(&cfg, merge_splits_kernel<D, float>, ws_o, ws_lse, pl.num_splits, kp.total_rows,
                              kp.out_f32, kp.lse);
  return cudaLaunchKernelEx(&cfg, merge_splits_kernel<D, __nv_bfloat16>, ws_o, ws_lse, pl.num_splits,
                            kp.total_rows, kp.out, kp.lse);
}

}  // namespace

size_t paged_attention_workspace_bytes(const PagedAttentionParams& p, int64_t total_q) {
  validate(p);
  const Plan pl = make_plan(p);
  if (pl.num_splits <= 1) return 0;
  const size_t rows = static_cast<size_t>(total_q * p.num_q_heads);
  const size_t o_bytes =
      (static_cast<size_t>(pl.num_splits) * rows * p.head_dim * sizeof(float) + 255) / 256 * 256;
  return o_bytes + static_cast<size_t>(pl.num_splits) * rows * sizeof(float);
}

cudaError_t paged_attention(const PagedAttentionParams& p, int64_t total_q, cudaStream_t stream) {
  if (p.num_seqs <= 0 || total_q <= 0) return cudaSuccess;
  validate(p);
  const Plan pl = make_plan(p);
  KernelParams kp{};
  detail::fill_paged_attention_common(kp, p);
  kp.num_splits = pl.num_splits;
  kp.partition = pl.partition;
  kp.split_by_context = pl.split_by_context && pl.num_splits > 1;
  kp.total_rows = total_q * p.num_q_heads;
  kp.causal_lens = p.causal ? p.causal_lens : nullptr;
  if (pl.num_splits > 1) {
    const size_t need = paged_attention_workspace_bytes(p, total_q);
    if (!p.workspace || p.workspace_bytes < need)
      throw std::invalid_argument("paged_attention: workspace of " + std::to_string(p.workspace_bytes) +
                                  " bytes, needs " + std::to_string(need));
    const size_t rows = static_cast<size_t>(kp.total_rows);
    const size_t o_bytes =
        (static_cast<size_t>(pl.num_splits) * rows * p.head_dim * sizeof(float) + 255) / 256 * 256;
    kp.ws_o = static_cast<float*>(p.workspace);
    kp.ws_lse = reinterpret_cast<float*>(static_cast<unsigned char*>(p.workspace) + o_bytes);
  } else if (p.out_f32) {
    kp.ws_o = p.out_f32;  // one split: the kernel writes the caller's fp32 rows directly
    kp.ws_lse = p.lse;
  }
  kp.out_f32 = p.out_f32;
  // Hopper: prefill runs on the wgmma kernel (paged_prefill_sm90.h) where it is eligible; it
  // takes neither causal_lens nor an fp32 output.
  if (!pl.decode && !kp.causal_lens && !p.out_f32 && paged_prefill_sm90_eligible(p, pl.num_splits > 1))
    return paged_prefill_sm90(p, total_q, stream);
  const int ns = static_cast<int>(p.num_seqs), hkv = static_cast<int>(p.num_kv_heads);
  cudaError_t e = cudaSuccess;
  switch (p.head_dim) {
    case 16: e = launch_d<16>(kp, pl, ns, hkv, stream); break;
    case 32: e = launch_d<32>(kp, pl, ns, hkv, stream); break;
    case 64: e = launch_d<64>(kp, pl, ns, hkv, stream); break;
    default: e = launch_d<128>(kp, pl, ns, hkv, stream); break;
  }
  return e;
}

}  // namespace longctx::cuda
