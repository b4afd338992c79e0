#include <cfloat>
#include <climits>
#include <cstdint>

#include "ops/cuda/sampling.h"

namespace longctx::cuda {
namespace {

constexpr int kThreads = 512;

// (value, index) with "better" = larger value, then lower index; NaN is never better.
__device__ __forceinline__ void take_better(float& v, int64_t& i, float v2, int64_t i2) {
  if (v2 > v || (v2 == v && i2 < i)) {
    v = v2;
    i = i2;
  }
}

__global__ void __launch_bounds__(kThreads) argmax_kernel(const float* logits, int64_t n, int32_t* out) {
  __shared__ float sv[32];
  __shared__ int64_t si[32];
  const float* row = logits + static_cast<int64_t>(blockIdx.x) * n;
  float best = -FLT_MAX;
  int64_t bi = n;  // "none yet": loses every tie
  for (int64_t j = threadIdx.x; j < n; j += kThreads) take_better(best, bi, row[j], j);
    // -inf logits: -inf > -FLT_MAX is false, so a row of -inf keeps bi = n; handled below.
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float v2 = __shfl_xor_sync(0xffffffffu, best, o);
    const int64_t i2 = __shfl_xor_sync(0xffffffffu, bi, o);
    take_better(best, bi, v2, i2);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    sv[warp] = best;
    si[warp] = bi;
  }
  __syncthreads();
  if (warp == 0) {
    best = lane < kThreads / 32 ? sv[lane] : -FLT_MAX;
    bi = lane < kThreads / 32 ? si[lane] : n;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float v2 = __shfl_xor_sync(0xffffffffu, best, o);
      const int64_t i2 = __shfl_xor_sync(0xffffffffu, bi, o);
      take_better(best, bi, v2, i2);
    }
    if (lane == 0) out[blockIdx.x] = static_cast<int32_t>(bi < n ? bi : 0);
  }
}

}  // namespace

cudaError_t argmax(const float* logits, int64_t rows, int64_t n, int32_t* out, cudaStream_t stream) {
  if (rows <= 0 || n <= 0) return cudaSuccess;
  argmax_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(logits, n, out);
  return cudaGetLastError();
}

// ---- sampling ------------------------------------------------------------------------------
//
// One thread block per row; the row (up to ~600 KB) is streamed from global memory (L2 after
// the first pass) two or three times and never copied:
//   1. max and argmax (NaN ranks as -inf, -0 as +0, ties to the lower id), and each thread's
//      own max;
//   2. top-k / top-p, usually on a short candidate list: the c-th largest of the 1024 thread
//      maxima (c = max(top_k, 256), at most 1024) is <= the c-th largest logit, so every token
//      top-k keeps has a logit >= it, and so do (by far) most nuclei; one pass gathers the
//      tokens at or above it (a prefix of the ranking, typically a few hundred) into shared
//      memory, with the row's total weight. On the list: top-k = the k-th largest logit
//      (radix select below, each token counted once; ties with it kept); top-p = the token of
//      the ranking (logit desc, id asc) at which the running weight of top-k's survivors first
//      reaches top_p × their mass (without top-k, × the whole row's mass: valid only when the
//      list's mass reaches that, which the kernel checks). When the list overflows (4096), or
//      top_k > 1024, or the nucleus reaches below the list, the same radix select runs over
//      the whole row instead (a few more passes);
//   3. the draw, by the Gumbel-max trick: the argmax over survivors (and min-p's w >= min_p)
//      of log w_i + g_i, g_i = -log(-log u_i), u_i a hash of (seed, offset, id). P(i) =
//      w_i / Σ w (Gumbel 1954; the "exponential race"): no renormalisation, no prefix sum, no
//      order, so the token is a function of (row, params) alone, whatever the batch. On the
//      list this costs nothing; over the row (no top-k/top-p, or the fallback) a token whose
//      log w + max g cannot beat the best score so far is skipped before its hash and logs
//      (exact: g is bounded because u has 23 bits).
// Weights are cpu::filter's: w = exp((l - max) / T), exactly 1 at the max, 0 below e^-104.
//
// Radix select over a 56-bit rank key (ordered logit bits << 24 | (2^24 - 1 - id): larger
// key = higher rank, unique per token) with digits of 12, 12, 8, 12, 12 bits: each level
// histograms the digit of the tokens that match the bits found so far (count and weight per
// bin, in shared memory), and one block scan from the top bin finds the bin where the running
// weight reaches the target. Over the row, once that bin holds <= kGatherCap tokens they are
// gathered into shared memory and the remaining levels run there. Weights are summed as
// 2^-38 fixed point in 64-bit integers: integer sums make the cut independent of the order
// in which threads add them.
namespace {

constexpr int kSampleThreads = 1024;
constexpr int kSampleWarps = kSampleThreads / 32;
constexpr int kBins = 4 * kSampleThreads;  // 12-bit digits; find_bin gives each thread 4 bins
constexpr int kGatherCap = 4096;
constexpr int kKeyBits = 56;
constexpr int kIdBits = 24;
constexpr uint32_t kIdMask = (1u << kIdBits) - 1;
constexpr int kValueBits = 32;
constexpr float kMinLogWeight = -104.0f;  // below e^-104 a float weight is 0 (cpu::filter's Weight)
constexpr float kFixedScale = 0x1p38f;    // weight <= 1, n < 2^24: sums stay below 2^62
constexpr int kMinCandidates = 256;       // the list's threshold is at least the 256th thread max
// Largest Gumbel draw: u <= 1 - 2^-24 gives -log(-log u) <= 16.64; rounded up for logf's error.
constexpr float kGumbelMax = 17.0f;

struct SampleShared {
  unsigned long long hist_w[kBins];
  unsigned int hist_c[kBins];
  unsigned long long list_key[kGatherCap];
  unsigned long long list_w[kGatherCap];
  unsigned long long scan[kSampleWarps];
  double sum[kSampleWarps];
  float best_v[kSampleWarps];
  int64_t best_i[kSampleWarps];
  int sel_bin;
  unsigned long long sel_above;
  unsigned int list_n;
  unsigned long long result;
};

// The logit as the CPU sampler ranks it: NaN as -inf, -0 as +0 (so that equal logits tie).
__device__ __forceinline__ float rank_value(float x) { return x != x ? -INFINITY : x + 0.0f; }

// Order-preserving map of a float to uint32 (larger float, larger integer).
__device__ __forceinline__ uint32_t ordered_bits(float x) {
  const uint32_t b = __float_as_uint(x);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ uint64_t rank_key(float x, int64_t id) {
  return (static_cast<uint64_t>(ordered_bits(x)) << kIdBits) | (kIdMask - static_cast<uint32_t>(id));
}

// murmur3's 64-bit finaliser: a bijection with full avalanche.
__device__ __forceinline__ uint64_t fmix64(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

// The key of one draw's stream: a hash of (seed, offset), computed once per row.
__device__ __forceinline__ uint64_t draw_key(uint64_t seed, uint64_t offset) {
  return fmix64(seed ^ fmix64(offset + 0x9E3779B97F4A7C15ull));
}

// Standard Gumbel noise for token `id` of a draw: 23 bits of fmix64(key, id) make
// u = (j + 1/2) / 2^23, exact in a float and strictly inside (0, 1), so -log(-log u) is finite
// and <= kGumbelMax (the tails cut at u = 2^-24 and 1 - 2^-24 hold ~6e-8 of the mass).
__device__ __forceinline__ float gumbel(uint64_t key, int64_t id) {
  const uint64_t h = fmix64(key ^ (static_cast<uint64_t>(id) * 0xC2B2AE3D27D4EB4Full));
  const float u = (static_cast<float>(static_cast<uint32_t>(h >> 41)) + 0.5f) * 0x1p-23f;
  return -logf(-logf(u));
}

// The float whose ordered_bits are o.
__device__ __forceinline__ float from_ordered_bits(uint32_t o) {
  return __uint_as_float((o & 0x80000000u) ? (o & 0x7fffffffu) : ~o);
}

// Calls f(x, i) for every element of row[0, n), each thread in increasing i; 16-byte loads,
// four in flight per thread.
template <typename F>
__device__ __forceinline__ void for_each_logit(const float* row, int64_t n, F&& f) {
  const int t = threadIdx.x;
  const int64_t head =
      min(n, static_cast<int64_t>(((16 - (reinterpret_cast<uintptr_t>(row) & 15)) & 15) / 4));
  if (t < head) f(__ldg(row + t), static_cast<int64_t>(t));
  const float4* v = reinterpret_cast<const float4*>(row + head);
  const int64_t nv = (n - head) / 4;
  int64_t j = t;
  for (; j + 3 * kSampleThreads < nv; j += 4 * kSampleThreads) {
    float4 q[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) q[u] = __ldg(v + j + u * kSampleThreads);
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const int64_t i = head + 4 * (j + u * kSampleThreads);
      f(q[u].x, i);
      f(q[u].y, i + 1);
      f(q[u].z, i + 2);
      f(q[u].w, i + 3);
    }
  }
  for (; j < nv; j += kSampleThreads) {
    const float4 q = __ldg(v + j);
    const int64_t i = head + 4 * j;
    f(q.x, i);
    f(q.y, i + 1);
    f(q.z, i + 2);
    f(q.w, i + 3);
  }
  for (int64_t i = head + 4 * nv + t; i < n; i += kSampleThreads) f(__ldg(row + i), i);
}

// Block-wide (value, index) max, ties to the lower index; every thread gets the result.
__device__ void block_best(float& v, int64_t& i, SampleShared& sm) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float v2 = __shfl_xor_sync(0xffffffffu, v, o);
    const int64_t i2 = __shfl_xor_sync(0xffffffffu, i, o);
    take_better(v, i, v2, i2);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    sm.best_v[warp] = v;
    sm.best_i[warp] = i;
  }
  __syncthreads();
  v = sm.best_v[lane];
  i = sm.best_i[lane];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float v2 = __shfl_xor_sync(0xffffffffu, v, o);
    const int64_t i2 = __shfl_xor_sync(0xffffffffu, i, o);
    take_better(v, i, v2, i2);
  }
  __syncthreads();  // best_v/best_i may be reused
}

// Block-wide sum in a fixed order (so the same on every run); every thread gets it.
__device__ double block_sum(double s, SampleShared& sm) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) sm.sum[warp] = s;
  __syncthreads();
  s = sm.sum[lane];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  __syncthreads();
  return s;
}

// Block-wide integer sum (exact, so order-free); every thread gets it.
__device__ unsigned long long block_sum_u64(unsigned long long s, SampleShared& sm) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) sm.scan[warp] = s;
  __syncthreads();
  s = sm.scan[lane];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  __syncthreads();
  return s;
}

// Exclusive prefix sum of one value per thread, in thread order; `total` gets the sum.
__device__ unsigned long long block_exclusive_scan(unsigned long long v, unsigned long long& total,
                                                   SampleShared& sm) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  unsigned long long x = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const unsigned long long y = __shfl_up_sync(0xffffffffu, x, o);
    if (lane >= o) x += y;
  }
  if (lane == 31) sm.scan[warp] = x;
  __syncthreads();
  if (warp == 0) {
    unsigned long long w = sm.scan[lane];
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const unsigned long long y = __shfl_up_sync(0xffffffffu, w, o);
      if (lane >= o) w += y;
    }
    sm.scan[lane] = w;
  }
  __syncthreads();
  const unsigned long long excl = x - v + (warp > 0 ? sm.scan[warp - 1] : 0ull);
  total = sm.scan[kSampleWarps - 1];
  __syncthreads();
  return excl;
}

// After a histogram: the bin, walking down from the top, in which the running weight
// (starting at `above`) first reaches `target`; sm.sel_bin (-1: never) and sm.sel_above (the
// weight of every token ranked above that bin). At level 0, `target_of(total)` turns the total
// weight into the target first.
template <typename Target>
__device__ void find_bin(unsigned long long above, Target&& target_of, bool first, SampleShared& sm,
                         unsigned long long& target) {
  const int t = threadIdx.x;
  unsigned long long w[4], local = 0;
#pragma unroll
  for (int j = 0; j < 4; ++j) local += w[j] = sm.hist_w[kBins - 1 - 4 * t - j];
  if (t == 0) sm.sel_bin = -1;
  unsigned long long total;
  const unsigned long long excl = block_exclusive_scan(local, total, sm);
  if (first) target = target_of(total);
  unsigned long long cum = above + excl;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    if (cum < target && target <= cum + w[j]) {
      sm.sel_bin = kBins - 1 - 4 * t - j;
      sm.sel_above = cum;
    }
    cum += w[j];
  }
  __syncthreads();
}

// Radix select (see the top of this section) over the tokens of the row that elem(x, i, key, w)
// admits (x already rank_value'd; w its integer weight), or, with from_list, over the
// sm.list_n entries of the shared list whose key >= min_key (weight 1 with count_mode, else
// list_w). Returns the key of the first token, in descending key order, at which the running
// weight reaches the target (target_of(total weight)), with its bits below `stop_bits`
// zeroed; 0 if none does (the target exceeds the total).
template <typename Elem, typename Target>
__device__ unsigned long long radix_select(const float* row, int64_t n, Elem&& elem, Target&& target_of,
                                           int stop_bits, bool from_list, bool count_mode,
                                           unsigned long long min_key, SampleShared& sm) {
  unsigned long long prefix = 0, above = 0, target = 0;
  int done = 0;
  bool in_list = from_list;
  for (int level = 0;; ++level) {
    const int db = level == 2 ? 8 : 12;  // 12 + 12 + 8 value bits, then 12 + 12 id bits
    const int shift = kKeyBits - done - db;
    for (int b = threadIdx.x; b < kBins; b += kSampleThreads) {
      sm.hist_w[b] = 0;
      sm.hist_c[b] = 0;
    }
    __syncthreads();
    auto add = [&](unsigned long long key, unsigned long long w) {
      if (done > 0 && (key >> (kKeyBits - done)) != prefix) return;
      const unsigned d = static_cast<unsigned>(key >> shift) & ((1u << db) - 1);
      atomicAdd(&sm.hist_w[d], w);
      atomicAdd(&sm.hist_c[d], 1u);
    };
    if (in_list) {
      for (unsigned j = threadIdx.x; j < sm.list_n; j += kSampleThreads)
        if (sm.list_key[j] >= min_key) add(sm.list_key[j], count_mode ? 1ull : sm.list_w[j]);
    } else {
      for_each_logit(row, n, [&](float x, int64_t i) {
        unsigned long long key, w;
        if (elem(rank_value(x), i, key, w)) add(key, w);
      });
    }
    __syncthreads();
    find_bin(above, target_of, level == 0, sm, target);
    const int b = sm.sel_bin;
    if (b < 0) return 0;  // every sync above was reached by all threads; b is block-uniform
    above = sm.sel_above;
    const unsigned count = sm.hist_c[b];
    prefix = (prefix << db) | static_cast<unsigned long long>(b);
    done += db;
    __syncthreads();  // sel_* and the histogram are rewritten below
    if (done >= stop_bits) return prefix << (kKeyBits - done);
    if (!in_list && count <= kGatherCap) {
      if (threadIdx.x == 0) sm.list_n = 0;
      __syncthreads();
      for_each_logit(row, n, [&](float x, int64_t i) {
        unsigned long long key, w;
        if (elem(rank_value(x), i, key, w) && (key >> (kKeyBits - done)) == prefix) {
          const unsigned at = atomicAdd(&sm.list_n, 1u);
          sm.list_key[at] = key;
          sm.list_w[at] = w;
        }
      });
      __syncthreads();
      in_list = true;
      min_key = 0;  // the gathered tokens are elem's already
    }
    if (count == 1) {
      for (unsigned j = threadIdx.x; j < sm.list_n; j += kSampleThreads)
        if (sm.list_key[j] >= min_key && (sm.list_key[j] >> (kKeyBits - done)) == prefix)
          sm.result = sm.list_key[j];
      __syncthreads();
      const unsigned long long r = sm.result;
      __syncthreads();
      return r;
    }
  }
}

__device__ __forceinline__ unsigned long long to_fixed(float w) { return __float2ull_rn(w * kFixedScale); }

__global__ void __launch_bounds__(kSampleThreads, 1)
    sample_kernel(const float* logits, int64_t n, const SamplingRow* params, int32_t* out_ids,
                  float* out_logprob) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  SampleShared& sm = *reinterpret_cast<SampleShared*>(smem_raw);
  const float* row = logits + static_cast<int64_t>(blockIdx.x) * n;
  const SamplingRow p = params[blockIdx.x];

  // 1. max and argmax; each thread's max goes to the list for step 2.
  float max_v = -INFINITY;
  int64_t arg = INT64_MAX;
  for_each_logit(row, n, [&](float x, int64_t i) { take_better(max_v, arg, rank_value(x), i); });
  sm.list_key[threadIdx.x] = rank_key(max_v, threadIdx.x);
  if (threadIdx.x == 0) sm.list_n = kSampleThreads;
  block_best(max_v, arg, sm);  // its syncs publish the list too
  const float max_logit = max_v;

  int64_t id = arg;
  double sum_exp = 0;  // Σ exp(l - max) over finite logits: the log-softmax's normaliser
  bool summed = false;
  const bool want_logprob = out_logprob != nullptr;
  if (!(p.temperature > 0.0f) || max_logit == -INFINITY) {
    if (want_logprob && max_logit != -INFINITY)
      for_each_logit(row, n, [&](float x, int64_t) {
        x = rank_value(x);
        if (x != -INFINITY) sum_exp += static_cast<double>(expf(x - max_logit));
      });
  } else {
    const float inv_t = 1.0f / p.temperature;
    auto log_weight = [&](float x) {  // log w, or -inf where cpu::filter's weight is 0
      if (x == max_logit) return 0.0f;
      const float d = (x - max_logit) * inv_t;
      if (d >= -87.0f) return d;  // e^d is a normal float
      return d >= kMinLogWeight && expf(d) > 0.0f ? d : -INFINITY;
    };
    auto weight = [](float lw) { return lw == 0.0f ? 1.0f : expf(lw); };
    const bool use_k = p.top_k > 0 && p.top_k < n;
    const bool use_p = p.top_p < 1.0f;
    const double top_p = p.top_p;
    auto nucleus_target = [top_p](unsigned long long mass) {
      // cum >= top_p × mass, for an integer cum: cum >= ceil(top_p × mass)
      return static_cast<unsigned long long>(ceil(top_p * static_cast<double>(mass)));
    };
    uint32_t kth_bits = 0;            // survivors of top-k: ordered_bits(logit) >= kth_bits
    unsigned long long last_key = 0;  // survivors of top-p: rank_key >= last_key
    bool listed = false;              // the survivors are all on the shared list

    // 2a. The candidate list.
    if ((use_k || use_p) && (!use_k || p.top_k <= kSampleThreads)) {
      const unsigned long long c =
          static_cast<unsigned long long>(min(max(use_k ? p.top_k : 0, kMinCandidates), kSampleThreads));
      const uint32_t tau_bits = static_cast<uint32_t>(
          radix_select(
              row, n, [](float, int64_t, unsigned long long&, unsigned long long&) { return false; },
              [c](unsigned long long) { return c; }, kValueBits, true, true, 0ull, sm) >>
          kIdBits);
      if (threadIdx.x == 0) sm.list_n = 0;
      __syncthreads();
      unsigned long long mass = 0;  // the row's, in fixed point
      for_each_logit(row, n, [&](float x, int64_t i) {
        x = rank_value(x);
        if (x == -INFINITY) return;
        if (want_logprob) sum_exp += static_cast<double>(expf(x - max_logit));
        const float lw = log_weight(x);
        const unsigned long long w = lw == -INFINITY ? 0ull : to_fixed(weight(lw));
        mass += w;
        if (ordered_bits(x) >= tau_bits) {
          const unsigned at = atomicAdd(&sm.list_n, 1u);
          if (at < kGatherCap) {
            sm.list_key[at] = rank_key(x, i);
            sm.list_w[at] = w;
          }
        }
      });
      summed = true;
      mass = block_sum_u64(mass, sm);  // its syncs publish list_n
      listed = sm.list_n <= kGatherCap;
      if (listed && use_k)
        kth_bits = static_cast<uint32_t>(
            radix_select(
                row, n, [](float, int64_t, unsigned long long&, unsigned long long&) { return false; },
                [k = static_cast<unsigned long long>(p.top_k)](unsigned long long) { return k; }, kValueBits,
                true, true, 0ull, sm) >>
            kIdBits);
      if (listed && use_p) {
        if (!use_k) {  // the nucleus lies on the list iff the list's mass reaches its target
          unsigned long long list_mass = 0;
          for (unsigned j = threadIdx.x; j < sm.list_n; j += kSampleThreads) list_mass += sm.list_w[j];
          listed = block_sum_u64(list_mass, sm) >= nucleus_target(mass);
        }
        if (listed)
          last_key = radix_select(
              row, n, [](float, int64_t, unsigned long long&, unsigned long long&) { return false; },
              [&](unsigned long long total) { return nucleus_target(use_k ? total : mass); }, kKeyBits, true,
              false, static_cast<unsigned long long>(kth_bits) << kIdBits, sm);
      }
    }

    // 2b. Otherwise over the whole row.
    if ((use_k || use_p) && !listed) {
      if (use_k)
        kth_bits = static_cast<uint32_t>(
            radix_select(
                row, n,
                [](float x, int64_t i, unsigned long long& key, unsigned long long& w) {
                  key = rank_key(x, i);
                  w = 1;
                  return true;
                },
                [k = static_cast<unsigned long long>(p.top_k)](unsigned long long) { return k; }, kValueBits,
                false, true, 0ull, sm) >>
            kIdBits);
      if (use_p)
        last_key = radix_select(
            row, n,
            [&](float x, int64_t i, unsigned long long& key, unsigned long long& w) {
              const float lw = log_weight(x);
              if (lw == -INFINITY || (use_k && ordered_bits(x) < kth_bits)) return false;
              key = rank_key(x, i);
              w = to_fixed(weight(lw));
              return true;
            },
            nucleus_target, kKeyBits, false, false, 0ull, sm);
    }

    // 3. The draw: Gumbel-max over the survivors. Every thread starts from the argmax (it
    // survives every filter), so its score bounds the winner's from below.
    const uint64_t key = draw_key(p.seed, p.offset);
    const float min_p = p.min_p;
    float best = gumbel(key, arg);
    int64_t best_id = arg;
    auto consider = [&](float x, int64_t i) {
      const float lw = log_weight(x);
      if (lw == -INFINITY || lw + kGumbelMax < best) return;  // cannot win
      if (use_k && ordered_bits(x) < kth_bits) return;
      if (use_p && rank_key(x, i) < last_key) return;
      if (min_p > 0.0f && weight(lw) < min_p) return;
      take_better(best, best_id, lw + gumbel(key, i), i);
    };
    if (listed) {
      for (unsigned j = threadIdx.x; j < sm.list_n; j += kSampleThreads) {
        const unsigned long long k = sm.list_key[j];
        consider(from_ordered_bits(static_cast<uint32_t>(k >> kIdBits)),
                 kIdMask - static_cast<uint32_t>(k & kIdMask));
      }
    } else {
      for_each_logit(row, n, [&](float x, int64_t i) {
        x = rank_value(x);
        if (x == -INFINITY) return;
        if (want_logprob && !summed) sum_exp += static_cast<double>(expf(x - max_logit));
        consider(x, i);
      });
    }
    block_best(best, best_id, sm);
    id = best_id;
  }

  if (want_logprob) sum_exp = block_sum(sum_exp, sm);
  if (threadIdx.x == 0) {
    out_ids[blockIdx.x] = static_cast<int32_t>(id);
    if (want_logprob) {
      const float x = rank_value(row[id]);
      out_logprob[blockIdx.x] =
          x == -INFINITY
              ? -INFINITY
              : static_cast<float>(static_cast<double>(x) - static_cast<double>(max_logit) - log(sum_exp));
    }
  }
}

}  // namespace

size_t sample_workspace_bytes(int64_t, int64_t) { return 0; }

cudaError_t sample(const float* logits, int64_t rows, int64_t n, const SamplingRow* params, int32_t* out_ids,
                   float* out_logprob, void*, size_t, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  if (n <= 0 || n > static_cast<int64_t>(kIdMask) || rows > INT32_MAX) return cudaErrorInvalidValue;
  const int smem = static_cast<int>(sizeof(SampleShared));
  const cudaError_t e =
      cudaFuncSetAttribute(sample_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != cudaSuccess) return e;
  sample_kernel<<<static_cast<unsigned>(rows), kSampleThreads, smem, stream>>>(logits, n, params, out_ids,
                                                                               out_logprob);
  return cudaGetLastError();
}

}  // namespace longctx::cuda
