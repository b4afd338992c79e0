// Hopper prefill attention (see paged_prefill_sm90.h): FlashAttention-3's structure over the
// paged cache. One CTA = 128 query rows ((token, q head of the kv head's group) pairs, as the
// portable kernel, so GQA reads each K/V tile once per group) of one kv head of one sequence;
// three warpgroups:
//   warpgroup 0, producer: Q by cp.async, then K and V tiles of 128 keys into 128B-swizzled
//     shared memory, kStages deep. A whole tile of a cache whose block_size is a multiple of 16
//     comes by TMA (one bulk tensor copy per 64-column half of the tile when its blocks lie back
//     to back in the cache, else of each run of keys inside one cache block, issued by the lanes
//     of warp 0, completing on the stage's "full" mbarrier);
//     the tile holding the context's end (and every tile of other block sizes) by cp.async
//     with zero fill past the context, so no cache slot outside it is ever read;
//   warpgroups 1, 2, consumers (64 rows each): S = Q·Kᵀ by wgmma m64n128k16 (Q and K from
//     shared memory, K-major), online softmax in fp32 in the exp2 domain on the accumulators,
//     P converted in registers to bf16 A fragments, O += P·V by wgmma with V N-major
//     (transposed through the descriptor). FlashAttention-3's intra-warpgroup overlap: the
//     softmax of tile j runs while the tensor cores do P_{j−1}·V_{j−1}. A warp's lane 0
//     arrives on a stage's "empty" mbarrier once the wgmma that read it has completed.
// setmaxnreg gives the consumers 224 registers and the producer 56. Row tiles are launched
// longest first (causal: later rows see more keys).
#include <cuda.h>  // CUtensorMap (the encoder is reached through the runtime: no libcuda link)
#include <cudaTypedefs.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <type_traits>

#include "ops/cuda/paged_attention_params.cuh"
#include "ops/cuda/paged_prefill_sm90.h"

namespace longctx::cuda {
namespace {

constexpr int kBM = 128;       // query rows per CTA: 2 consumer warpgroups × 64
constexpr int kBN = 128;       // keys per tile
constexpr int kStages = 2;     // K/V shared-memory stages (LONGCTX_ATTN_SM90_STAGES=3: three)
constexpr int kThreads = 384;  // producer warpgroup + 2 consumer warpgroups
constexpr int kProducerRegs = 56;
constexpr int kConsumerRegs = 224;  // 128·56 + 256·224 = 64512 ≤ 65536 (40 spilled the producer)
using detail::kLog2e;
constexpr float kLn2 = 0.6931471805599453f;

struct Sm90Params {
  // The K and V caches as 3-D tensors {head_dim, kv heads, slots}, boxes of {64, 1, box_rows}
  // keys, 128B swizzle (valid when use_tma); tm_*_tile the same with boxes of a whole tile
  // ({64, 1, kBN}) for tiles whose blocks lie back to back in the cache (valid when
  // use_tile_box).
  CUtensorMap tm_k, tm_v, tm_k_tile, tm_v_tile;
  int32_t use_tma, box_rows, use_tile_box;
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
  float scale_log2;
  bool causal;
};

template <int D, int ST>
constexpr uint32_t smem_bytes() {
  // 1024 bytes of slack to align the base (the 128B swizzle repeats every 1024 bytes and the
  // descriptors assume tiles start on that boundary), Q, K and V stages, 4·kStages + 1 mbarriers.
  return 1024 + kBM * D * 2 + 2 * ST * kBN * D * 2 + (4 * ST + 1) * 8;
}

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Byte offset of 16-byte chunk c of row r in a [ROWS][D] bf16 tile stored as wgmma's
// 128B-swizzled K-major layout: D/64 column blocks of [ROWS][64] (128-byte rows), chunk
// index XOR row mod 8 within each 1024-byte group of 8 rows.
template <int ROWS>
__device__ __forceinline__ uint32_t tile_off(int r, int c) {
  return static_cast<uint32_t>((c >> 3) * ROWS * 128 + r * 128 + (((c & 7) ^ (r & 7)) << 4));
}

// wgmma shared-memory matrix descriptor, 128B swizzle (PTX ISA "Matrix Descriptor Format").
__device__ __forceinline__ uint64_t make_desc(uint32_t saddr, uint32_t lbo, uint32_t sbo) {
  return static_cast<uint64_t>((saddr & 0x3FFFF) >> 4) | (static_cast<uint64_t>(lbo >> 4) << 16) |
         (static_cast<uint64_t>(sbo >> 4) << 32) | (1ull << 62);
}

__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count));
}
// Arrives and adds tx_bytes to the bytes the current phase waits for.
__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t tx_bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(tx_bytes)
               : "memory");
}
// Bulk tensor copy of one box at coordinates {c0, c1, c2} into shared memory; its bytes count
// towards the mbarrier's transaction count.
__device__ __forceinline__ void tma_load_3d(uint32_t dst, const CUtensorMap* map, int c0, int c1, int c2,
                                            uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, "
      "%4}], "
      "[%5];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(bar)
      : "memory");
}
// The producer warpgroup's own barrier (id 1; __syncthreads uses 0).
__device__ __forceinline__ void producer_sync() { asm volatile("bar.sync 1, 128;\n" ::: "memory"); }
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.shared::cta.b64 st, [%0];\n}\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred P1;\nWAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 P1, [%0], %1;\n"
      "@P1 bra DONE;\nbra WAIT;\nDONE:\n}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Keeps the compiler from moving accesses of wgmma accumulators across the asynchronous
// wgmma's issue and wait (the asm statements return before the tensor cores write them).
template <int N>
__device__ __forceinline__ void fence_regs(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}

__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// d (+)= A·Bᵀ, m64n128k16, A and B K-major in shared memory (descriptors), fp32 accumulators.
__device__ __forceinline__ void wgmma_ss_m64n128(float (&d)[64], uint64_t desc_a, uint64_t desc_b,
                                                 int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, "
      "%11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, "
      "%31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, "
      "%51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]),
        "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),
        "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]),
        "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]),
        "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]),
        "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]),
        "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(desc_a), "l"(desc_b), "r"(accumulate));
}

// d += A·B, m64n128k16, A (bf16 pairs) in registers, B N-major in shared memory (transposed
// through the descriptor), fp32 accumulators.
__device__ __forceinline__ void wgmma_rs_m64n128_tb(float (&d)[64], const uint32_t (&a)[4], uint64_t desc_b) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, "
      "%11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, "
      "%31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, "
      "%51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, 1, 1, 1, "
      "1;\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]),
        "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),
        "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]),
        "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]),
        "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]),
        "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]),
        "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b));
}

#endif  // sm_90a

template <int D, int kStages>
__global__ void __launch_bounds__(kThreads, 1)
    paged_prefill_sm90_kernel(const __grid_constant__ Sm90Params p) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  static_assert(D == 128, "the wgmma shapes below are written for head_dim 128");
  constexpr int CH = D / 8;  // 16-byte chunks per row
  constexpr uint32_t kQBytes = kBM * D * 2, kKVBytes = kBN * D * 2;
  extern __shared__ unsigned char smem_raw[];
  const uint32_t q_s = (smem_addr(smem_raw) + 1023u) & ~1023u;
  const uint32_t k_s = q_s + kQBytes;             // stage s at k_s + s·kKVBytes
  const uint32_t v_s = k_s + kStages * kKVBytes;  // stage s at v_s + s·kKVBytes
  // mbarriers, 8 bytes each: K full, V full, K empty, V empty (kStages of each), Q full.
  const uint32_t bars = v_s + kStages * kKVBytes;
  auto full_k = [&](int s) { return bars + 8 * s; };
  auto full_v = [&](int s) { return bars + 8 * (kStages + s); };
  auto empty_k = [&](int s) { return bars + 8 * (2 * kStages + s); };
  auto empty_v = [&](int s) { return bars + 8 * (3 * kStages + s); };
  const uint32_t full_q = bars + 8 * 4 * kStages;

  const int tid = threadIdx.x;
  const int h = blockIdx.x, seq = blockIdx.z;
  const int64_t G = p.group;
  const int64_t qb = p.q_begin[seq];
  const int64_t nq = p.q_begin[seq + 1] - qb;
  const int64_t rows = nq * G;
  const int64_t r0 = static_cast<int64_t>(gridDim.y - 1 - blockIdx.y) * kBM;  // longest rows first
  if (r0 >= rows) return;
  const int64_t ctx = p.context_lens[seq];
  const int64_t qpos0 = ctx - nq;
  const int64_t r_last = min(r0 + kBM, rows) - 1;
  const int64_t kv_end64 = p.causal ? min(ctx, qpos0 + r_last / G + 1) : ctx;
  const int kv_end = static_cast<int>(kv_end64 > 0 ? kv_end64 : 0);
  const int n_tiles = (kv_end + kBN - 1) / kBN;

  if (tid == 0) {
#pragma unroll
    for (int s = 0; s < kStages; ++s) {
      mbar_init(full_k(s), 1);  // the producer's one arrival (+ TMA bytes)
      mbar_init(full_v(s), 1);
      mbar_init(empty_k(s), 8);  // one arrival per consumer warp
      mbar_init(empty_v(s), 8);
    }
    mbar_init(full_q, 1);
  }
  __syncthreads();

  if (tid < 128) {
    // ---- producer ----
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kProducerRegs));
    constexpr int RPP = 128 / CH;  // rows per pass of the 128 threads
    const int c = tid % CH, rsub = tid / CH;
    const int32_t* btab = p.block_tables + seq * p.block_table_stride;
    // cp.async'd shared memory is read next by wgmma (the async proxy): every writer waits for
    // its copies and fences, the warpgroup meets, then one thread arrives.
    auto publish = [&](uint32_t bar) {
      asm volatile("cp.async.wait_all;\n" ::: "memory");
      asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
      producer_sync();
      if (tid == 0) mbar_arrive(bar);
    };
    if (n_tiles > 0) {
#pragma unroll 4
      for (int r = rsub; r < kBM; r += RPP) {
        const int64_t rr = r0 + r;
        const bool ok = rr < rows;
        int64_t off = 0;
        if (ok) off = (qb + rr / G) * p.q_stride + (h * G + rr % G) * D + c * 8;
        cp_async16(q_s + tile_off<kBM>(r, c), p.q + off, ok ? 16 : 0);
      }
      publish(full_q);
    }
    // A tile by cp.async: keys k0 … k0+kBN−1 through the block table, zeros past kv_end.
    auto load_rows = [&](const __nv_bfloat16* cache, uint32_t dst, uint32_t bar, int k0) {
#pragma unroll 8
      for (int r = rsub; r < kBN; r += RPP) {
        const int pos = k0 + r;
        const bool ok = pos < kv_end;
        int64_t off = 0;
        if (ok) {
          const int64_t slot =
              static_cast<int64_t>(btab[pos / p.block_size]) * p.block_size + pos % p.block_size;
          off = (slot * p.num_kv_heads + h) * D + c * 8;
        }
        cp_async16(dst + tile_off<kBN>(r, c), cache + off, ok ? 16 : 0);
      }
      publish(bar);
    };
    // A whole tile by TMA, from the slot of each box_rows keys (`slot`, lane i of warp 0: keys
    // k0 + i·box_rows …, inside one cache block). When the tile's blocks lie back to back in the
    // cache (`whole`: a fresh sequence's blocks usually do), lane 0 copies it as one box per
    // 64-column half: 2 bulk copies instead of 2·kBN/box_rows (16 for block size 16), which
    // took the kernel from ~480 to ~630 TFLOP/s at the model's chunk shapes (H100,
    // docs/cuda_prefill_notes.md v6): the many 2 KB boxes, not the bytes, limited the loads.
    auto load_tma = [&](const CUtensorMap* map, const CUtensorMap* map_tile, uint32_t dst, uint32_t bar,
                        int slot, bool whole) {
      if (tid >= 32) return;
      if (tid == 0) mbar_arrive_expect_tx(bar, kKVBytes);
      __syncwarp();
      if (whole) {
        if (tid == 0) {
#pragma unroll
          for (int half = 0; half < D / 64; ++half)
            tma_load_3d(dst + half * kBN * 128, map_tile, half * 64, h, slot, bar);
        }
      } else if (tid < kBN / p.box_rows) {
#pragma unroll
        for (int half = 0; half < D / 64; ++half)
          tma_load_3d(dst + half * kBN * 128 + tid * p.box_rows * 128, map, half * 64, h, slot, bar);
      }
    };
    for (int j = 0; j < n_tiles; ++j) {
      const int s = j % kStages;
      const uint32_t parity = ((j / kStages) + 1) & 1;  // the release of tile j − kStages
      const int k0 = j * kBN;
      const bool tma = p.use_tma && k0 + kBN <= kv_end;
      // The tile's slots (K and V alike) are read from the block table before the waits below,
      // so the table's latency overlaps them.
      int slot = 0;
      bool whole = false;
      if (tma && tid < 32) {
        const int nbox = kBN / p.box_rows;
        if (tid < nbox) {
          const int pos = k0 + tid * p.box_rows;
          slot = btab[pos / p.block_size] * p.block_size + pos % p.block_size;
        }
        const int slot0 = __shfl_sync(0xffffffffu, slot, 0);
        whole = p.use_tile_box && nbox > 1 &&
                __all_sync(0xffffffffu, tid >= nbox || slot == slot0 + tid * p.box_rows);
        if (whole) slot = slot0;
      }
      if (j >= kStages) mbar_wait(empty_k(s), parity);
      if (tma)
        load_tma(&p.tm_k, &p.tm_k_tile, k_s + s * kKVBytes, full_k(s), slot, whole);
      else
        load_rows(p.k_cache, k_s + s * kKVBytes, full_k(s), k0);
      if (j >= kStages) mbar_wait(empty_v(s), parity);
      if (tma)
        load_tma(&p.tm_v, &p.tm_v_tile, v_s + s * kKVBytes, full_v(s), slot, whole);
      else
        load_rows(p.v_cache, v_s + s * kKVBytes, full_v(s), k0);
    }
  } else {
    // ---- consumers ----
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kConsumerRegs));
    const int ctid = tid - 128;
    const int wg = ctid / 128, warp = (ctid / 32) % 4, lane = tid & 31;
    const int lr0 = wg * 64 + warp * 16 + (lane >> 2);  // this thread's rows: lr0, lr0 + 8
    int qpos_row[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) qpos_row[i] = static_cast<int>(qpos0 + (r0 + lr0 + 8 * i) / G);
    // The warp's first row has the smallest position: tiles ending at or before it need no mask.
    const int warp_min_qpos = static_cast<int>(qpos0 + (r0 + wg * 64 + warp * 16) / G);
    const float sl2 = p.scale_log2;

    float o[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; ++i) o[i] = 0.0f;
    float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};  // m in scaled log2 units
    uint32_t pa[kBN / 16][4];  // the previous tile's P: A fragments of its P·V k-steps

    // This warpgroup's 64 rows in each column block of Q. Descriptors are built once per tile
    // and advanced by (byte offset >> 4): the 14-bit address field cannot carry (< 256 KB).
    const uint64_t qd = make_desc(q_s + wg * 64 * 128, 16, 1024);
    auto release = [&](uint32_t bar) {
      __syncwarp();
      if (lane == 0) mbar_arrive(bar);
    };
    // O += P·V of tile t (stage t % kStages), issued and committed.
    auto issue_pv = [&](int t) {
      const int sv = t % kStages;
      const uint64_t vd = make_desc(v_s + sv * kKVBytes, kBN * 128, 1024);
      mbar_wait(full_v(sv), (t / kStages) & 1);
      fence_regs(o);
      wgmma_fence();
#pragma unroll
      for (int k = 0; k < kBN / 16; ++k) wgmma_rs_m64n128_tb(o, pa[k], vd + ((k * 2048) >> 4));
      wgmma_commit();
    };

    // Iteration j issues S_j = Q·K_jᵀ, then P_{j−1}·V_{j−1}, and runs the softmax of S_j while
    // the tensor cores do the latter (FlashAttention-3 §3.2). The first iteration is its own
    // instance (no P·V yet), so every wgmma wait below has a fixed group count.
    auto step = [&](int j, auto first) {
      const int s = j % kStages;
      mbar_wait(full_k(s), (j / kStages) & 1);
      float sc[kBN / 2];
      const uint64_t kd = make_desc(k_s + s * kKVBytes, 16, 1024);
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        // k-step kk: 32 bytes into the 128-byte swizzled rows, then the next 64-column block.
        const uint32_t qoff = (kk & 3) * 32 + (kk >> 2) * (kBM * 128);
        const uint32_t koff = (kk & 3) * 32 + (kk >> 2) * (kBN * 128);
        wgmma_ss_m64n128(sc, qd + (qoff >> 4), kd + (koff >> 4), kk > 0);
      }
      wgmma_commit();
      if constexpr (decltype(first)::value) {
        wgmma_wait<0>();
      } else {
        issue_pv(j - 1);
        wgmma_wait<1>();  // S_j done; P_{j−1}·V_{j−1} may still run
      }
      fence_regs(sc);
      release(empty_k(s));

      // Mask keys past kv_end and (causal) after the row's position.
      const int k0 = j * kBN;
      const bool need_mask = k0 + kBN > kv_end || (p.causal && k0 + kBN - 1 > warp_min_qpos);
      if (need_mask) {
#pragma unroll
        for (int nt = 0; nt < kBN / 8; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int kp = k0 + nt * 8 + (lane & 3) * 2 + (e & 1);
            if (kp >= kv_end || (p.causal && kp > qpos_row[e >> 1])) sc[nt * 4 + e] = -INFINITY;
          }
      }
      // Online softmax: per row, the new max over the quad's 4 threads (raw scores; the scale
      // is folded into the exponent's FMA).
      float alpha[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        float mx = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < kBN / 8; ++nt)
          mx = fmaxf(mx, fmaxf(sc[nt * 4 + 2 * i], sc[nt * 4 + 2 * i + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_new = fmaxf(m_run[i], mx * sl2);
        const float base = m_new == -INFINITY ? 0.0f : m_new;  // all masked so far: no inf − inf
        alpha[i] = ex2(m_run[i] - base);
        m_run[i] = m_new;
        float rs = 0.0f;
#pragma unroll
        for (int nt = 0; nt < kBN / 8; ++nt) {
          sc[nt * 4 + 2 * i] = ex2(fmaf(sc[nt * 4 + 2 * i], sl2, -base));
          sc[nt * 4 + 2 * i + 1] = ex2(fmaf(sc[nt * 4 + 2 * i + 1], sl2, -base));
          rs += sc[nt * 4 + 2 * i] + sc[nt * 4 + 2 * i + 1];
        }
        l_run[i] = l_run[i] * alpha[i] + rs;  // this thread's columns; the quad sums at the end
      }

      if constexpr (!decltype(first)::value) {
        // P_{j−1}·V_{j−1} is done: its V stage is free and its P registers may be rewritten.
        wgmma_wait<0>();
        fence_regs(o);
        release(empty_v((j - 1) % kStages));
      }
      // O is not in flight: rescale it for this tile's max before P_j·V_j adds to it (skipped,
      // exactly, when no row max of the warp moved: most tiles once the max has settled).
      if (__any_sync(0xffffffffu, alpha[0] != 1.0f || alpha[1] != 1.0f)) {
#pragma unroll
        for (int i = 0; i < 2; ++i)
#pragma unroll
          for (int dt = 0; dt < D / 8; ++dt) {
            o[dt * 4 + 2 * i] *= alpha[i];
            o[dt * 4 + 2 * i + 1] *= alpha[i];
          }
      }
      // The S accumulators of keys 16·t … 16·t+15 are the A fragment of P·V's k-step t.
#pragma unroll
      for (int t = 0; t < kBN / 16; ++t) {
        pa[t][0] = pack_bf16(sc[8 * t + 0], sc[8 * t + 1]);
        pa[t][1] = pack_bf16(sc[8 * t + 2], sc[8 * t + 3]);
        pa[t][2] = pack_bf16(sc[8 * t + 4], sc[8 * t + 5]);
        pa[t][3] = pack_bf16(sc[8 * t + 6], sc[8 * t + 7]);
      }
    };

    if (n_tiles > 0) {
      mbar_wait(full_q, 0);
      step(0, std::true_type{});
      for (int j = 1; j < n_tiles; ++j) step(j, std::false_type{});
      issue_pv(n_tiles - 1);
      wgmma_wait<0>();
      fence_regs(o);
    }

#pragma unroll
    for (int i = 0; i < 2; ++i) {
      l_run[i] += __shfl_xor_sync(0xffffffffu, l_run[i], 1);
      l_run[i] += __shfl_xor_sync(0xffffffffu, l_run[i], 2);
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int64_t rr = r0 + lr0 + 8 * i;
      if (rr >= rows) continue;
      const int64_t R = (qb + rr / G) * p.num_q_heads + h * G + rr % G;
      const bool any = l_run[i] > 0.0f;
      const float inv = any ? 1.0f / l_run[i] : 0.0f;
      __nv_bfloat16* dst = p.out + R * D + (lane & 3) * 2;
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt)
        *reinterpret_cast<__nv_bfloat162*>(dst + dt * 8) =
            __floats2bfloat162_rn(o[dt * 4 + 2 * i] * inv, o[dt * 4 + 2 * i + 1] * inv);
      if ((lane & 3) == 0 && p.lse) p.lse[R] = any ? (m_run[i] + __log2f(l_run[i])) * kLn2 : -INFINITY;
    }
  }
#else
  __trap();  // built for another target: paged_prefill_sm90_eligible never lets a launch through
#endif
}

}  // namespace

bool paged_prefill_sm90_eligible(const PagedAttentionParams& p, bool portable_splits) {
  // Block sizes that are not multiples of 16 would load every tile by cp.async: measured
  // slower than the portable kernel (156 vs 200 TFLOP/s at 64K), so they stay there.
  if (p.max_num_q <= 1 || p.head_dim != 128 || p.block_size % 16 != 0) return false;
  if (const char* env = std::getenv("LONGCTX_ATTN_SM90"); env && std::strcmp(env, "0") == 0) return false;
  int dev = 0, major = 0, minor = 0, sms = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
    return false;
  if (major != 9 || minor != 0) return false;  // sm_90a code runs on compute capability 9.0 only
  const int64_t G = p.num_q_heads / p.num_kv_heads;
  const int64_t m_blocks = (p.max_num_q * G + kBM - 1) / kBM;
  // Where the portable kernel would split the keys (few row tiles), this kernel (which does
  // not split) is taken only when its grid fills two waves of one CTA per SM.
  if (portable_splits && m_blocks * p.num_kv_heads * p.num_seqs < 2LL * sms) return false;
  return m_blocks <= 65535 && p.num_seqs <= 65535 && p.num_kv_heads <= 65535 &&
         p.max_context_len < (int64_t{1} << 31) - kBN;
}

template <int D, int ST>
cudaError_t launch(const Sm90Params& kp, dim3 grid, cudaStream_t stream) {
  auto kernel = paged_prefill_sm90_kernel<D, ST>;
  constexpr uint32_t smem = smem_bytes<D, ST>();
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != cudaSuccess) return e;
  kernel<<<grid, kThreads, smem, stream>>>(kp);
  return cudaGetLastError();
}

// cuTensorMapEncodeTiled through the runtime's driver entry point (no libcuda link), looked
// up once.
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) !=
            cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
      f = nullptr;
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

// The cache as {head_dim, kv heads, slots} with boxes of {64, 1, box_rows}. The slot count is
// not known here (the block tables address the cache), so the map's extent is the largest a
// 32-bit coordinate reaches; reads stay where the block tables point, as with cp.async.
bool encode_cache_map(CUtensorMap* map, const __nv_bfloat16* cache, int64_t num_kv_heads, int64_t head_dim,
                      int box_rows) {
  auto encode = tensor_map_encoder();
  if (!encode) return false;
  const cuuint64_t dims[3] = {static_cast<cuuint64_t>(head_dim), static_cast<cuuint64_t>(num_kv_heads),
                              cuuint64_t{1} << 31};
  const cuuint64_t strides[2] = {static_cast<cuuint64_t>(head_dim * 2),
                                 static_cast<cuuint64_t>(num_kv_heads * head_dim * 2)};
  const cuuint32_t box[3] = {64, 1, static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t elem_strides[3] = {1, 1, 1};
  return encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, const_cast<__nv_bfloat16*>(cache), dims, strides,
                box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

cudaError_t paged_prefill_sm90(const PagedAttentionParams& p, int64_t total_q, cudaStream_t stream) {
  (void)total_q;
  Sm90Params kp{};
  // TMA when every run of box_rows keys of a tile lies inside one cache block: block_size a
  // multiple of 16 (box_rows = gcd(block_size, 128)). LONGCTX_ATTN_SM90_TMA=0 turns it off.
  const char* tma_env = std::getenv("LONGCTX_ATTN_SM90_TMA");
  const bool tma_off = tma_env && std::strcmp(tma_env, "0") == 0;
  kp.box_rows = static_cast<int32_t>(std::gcd<int64_t>(p.block_size, kBN));
  kp.use_tma = !tma_off && p.block_size % 16 == 0 && reinterpret_cast<uintptr_t>(p.k_cache) % 16 == 0 &&
               reinterpret_cast<uintptr_t>(p.v_cache) % 16 == 0 &&
               encode_cache_map(&kp.tm_k, p.k_cache, p.num_kv_heads, p.head_dim, kp.box_rows) &&
               encode_cache_map(&kp.tm_v, p.v_cache, p.num_kv_heads, p.head_dim, kp.box_rows);
  // Whole-tile boxes where a tile's blocks are back to back (LONGCTX_ATTN_SM90_TILE_BOX=0: never,
  // every tile by boxes of one block as before).
  const char* tile_env = std::getenv("LONGCTX_ATTN_SM90_TILE_BOX");
  kp.use_tile_box = kp.use_tma && kp.box_rows < kBN && !(tile_env && std::strcmp(tile_env, "0") == 0) &&
                    encode_cache_map(&kp.tm_k_tile, p.k_cache, p.num_kv_heads, p.head_dim, kBN) &&
                    encode_cache_map(&kp.tm_v_tile, p.v_cache, p.num_kv_heads, p.head_dim, kBN);
  detail::fill_paged_attention_common(kp, p);
  const int64_t m_blocks = (p.max_num_q * kp.group + kBM - 1) / kBM;
  const dim3 grid(static_cast<unsigned>(p.num_kv_heads), static_cast<unsigned>(m_blocks),
                  static_cast<unsigned>(p.num_seqs));
  const char* st_env = std::getenv("LONGCTX_ATTN_SM90_STAGES");
  return st_env && std::strcmp(st_env, "3") == 0 ? launch<128, 3>(kp, grid, stream)
                                                 : launch<128, kStages>(kp, grid, stream);
}

}  // namespace longctx::cuda
