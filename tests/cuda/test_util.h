// Helpers for the GPU kernel tests: checked CUDA calls, device buffers that start poisoned
// (all bits set: NaN in bf16 and fp32), bf16 random inputs, float64 comparisons.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "core/dtype.h"

namespace longctx::cuda::test {

#define CUDA_OK(expr) ASSERT_EQ(cudaSuccess, (expr)) << #expr << ": " << cudaGetErrorString(expr)
// After a launch: the returned launch error, then a sync that surfaces execution errors.
#define LAUNCH_OK(expr)                                                                \
  do {                                                                                 \
    const cudaError_t e_ = (expr);                                                     \
    ASSERT_EQ(cudaSuccess, e_) << #expr << ": " << cudaGetErrorString(e_);             \
    const cudaError_t s_ = cudaDeviceSynchronize();                                    \
    ASSERT_EQ(cudaSuccess, s_) << "after " << #expr << ": " << cudaGetErrorString(s_); \
    const cudaError_t l_ = cudaGetLastError();                                         \
    ASSERT_EQ(cudaSuccess, l_) << "after " << #expr << ": " << cudaGetErrorString(l_); \
  } while (0)

// Fresh random data for every run; the seed is printed so a failure can be replayed
// (LONGCTX_TEST_SEED=<seed> fixes it).
inline uint64_t test_seed() {
  if (const char* s = std::getenv("LONGCTX_TEST_SEED")) return std::strtoull(s, nullptr, 10);
  return std::random_device{}() * 0x9E3779B97F4A7C15ull + std::random_device{}();
}

struct Rng {
  uint64_t seed = test_seed();
  std::mt19937_64 gen{seed};
  // bf16 bits of N(0, std) values (never exactly zero in practice).
  std::vector<uint16_t> bf16(size_t n, float std = 1.0f) {
    std::normal_distribution<float> d(0.0f, std);
    std::vector<uint16_t> v(n);
    for (auto& x : v) x = f32_to_bf16(d(gen));
    return v;
  }
  std::vector<float> f32(size_t n, float std = 1.0f) {
    std::normal_distribution<float> d(0.0f, std);
    std::vector<float> v(n);
    for (auto& x : v) x = d(gen);
    return v;
  }
  int64_t uniform(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(gen); }
};

template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n) {
    if (cudaMalloc(&p_, std::max<size_t>(n, 1) * sizeof(T)) != cudaSuccess) p_ = nullptr;
    poison();
  }
  explicit DeviceBuffer(const std::vector<T>& h) : DeviceBuffer(h.size()) { upload(h); }
  ~DeviceBuffer() { cudaFree(p_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* get() const { return p_; }
  size_t size() const { return n_; }
  void poison() {
    if (p_) EXPECT_EQ(cudaSuccess, cudaMemset(p_, 0xff, std::max<size_t>(n_, 1) * sizeof(T)));
  }
  void upload(const std::vector<T>& h) {
    ASSERT_EQ(h.size(), n_);
    ASSERT_EQ(cudaSuccess, cudaMemcpy(p_, h.data(), n_ * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> h(n_);
    EXPECT_EQ(cudaSuccess, cudaMemcpy(h.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }
  __nv_bfloat16* bf16() const { return reinterpret_cast<__nv_bfloat16*>(p_); }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

inline std::vector<double> to_double(const std::vector<uint16_t>& v) {
  std::vector<double> d(v.size());
  for (size_t i = 0; i < v.size(); ++i) d[i] = bf16_to_f32(v[i]);
  return d;
}
inline std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// ‖out − ref‖ / ‖ref‖ over all elements; NaN anywhere (an unwritten, poisoned element or a
// real NaN) gives +inf so it never passes.
template <typename T>
double rel_error(const std::vector<T>& out, const std::vector<double>& ref) {
  const std::vector<double> o = to_double(out);
  if (o.size() != ref.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < o.size(); ++i) {
    if (std::isnan(o[i])) return INFINITY;
    num += (o[i] - ref[i]) * (o[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// Runs f(i) for i in [0, n) on all host cores (the float64 references are the slow part).
template <typename F>
void parallel_for(int64_t n, F f) {
  const int64_t nt = std::max<int64_t>(1, std::min<int64_t>(n, std::thread::hardware_concurrency()));
  std::vector<std::thread> ts;
  for (int64_t t = 0; t < nt; ++t)
    ts.emplace_back([&, t] {
      for (int64_t i = t; i < n; i += nt) f(i);
    });
  for (auto& t : ts) t.join();
}

}  // namespace longctx::cuda::test
