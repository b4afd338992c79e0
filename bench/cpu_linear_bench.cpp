// CPU linear across its regime switch: cpu::linear with bf16 weights at the Qwen3-0.6B
// projection shapes for m = 1..32 rows (decode batches), beside two peers timed in the
// same run on the same inputs: OpenBLAS sgemm on the same weights already widened to
// fp32 (what an fp32 model pays, no conversion), and the bf16 weight bytes over the
// machine's measured read bandwidth (the streaming path's floor). One JSON object per
// line: {"shape", "m", "n", "k", "ours_ms", "sgemm_f32_ms", "read_floor_ms"}.
//
//   longctx_bench_cpu_linear [--repeats 9] [--ms 1,2,4,5,8,12,16,17,24,32]
//
// Medians of `repeats` timed calls after one warm-up; OMP_NUM_THREADS as the engine runs.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "ops/cpu/linear.h"

namespace {

using Clock = std::chrono::steady_clock;

template <typename F>
double median_ms(int repeats, F&& fn) {
  fn();
  std::vector<double> t;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = Clock::now();
    fn();
    t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

struct Shape {
  const char* name;
  int64_t n, k;
};

// Read bandwidth: summing a buffer far larger than the caches.
double read_bytes_per_s(int repeats) {
  std::vector<float> buf(size_t{64} << 20, 1.0f);  // 256 MiB
  volatile float sink = 0;
  const double ms = median_ms(repeats, [&] {
    float acc[16] = {};
    for (size_t i = 0; i + 16 <= buf.size(); i += 16)
      for (int l = 0; l < 16; ++l) acc[l] += buf[i + l];
    float s = 0;
    for (float a : acc) s += a;
    sink = sink + s;
  });
  return static_cast<double>(buf.size() * sizeof(float)) / (ms * 1e-3);
}

}  // namespace

int main(int argc, char** argv) {
  int repeats = 9;
  std::vector<int64_t> ms = {1, 2, 4, 5, 8, 12, 16, 17, 24, 32};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--repeats" && i + 1 < argc) {
      repeats = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--ms" && i + 1 < argc) {
      ms.clear();
      std::stringstream in(argv[++i]);
      for (std::string tok; std::getline(in, tok, ',');) ms.push_back(std::atoll(tok.c_str()));
    } else {
      std::fprintf(stderr, "usage: %s [--repeats N] [--ms 1,2,4,...]\n", argv[0]);
      return 2;
    }
  }
  // Qwen3-0.6B: q|k|v fused, o_proj, gate|up fused, down, the LM head.
  const Shape shapes[] = {{"qkv", 4096, 1024}, {"o", 1024, 2048}, {"gate_up", 6144, 1024},
                          {"down", 1024, 3072}, {"lm_head", 151936, 1024}};
  const double bw = read_bytes_per_s(repeats);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-0.05f, 0.05f);
  const int64_t max_m = *std::max_element(ms.begin(), ms.end());
  for (const Shape& s : shapes) {
    std::vector<float> w32(static_cast<size_t>(s.n * s.k));
    std::vector<uint16_t> w16(w32.size());
    for (size_t i = 0; i < w32.size(); ++i) {
      w16[i] = longctx::f32_to_bf16(u(rng));
      w32[i] = longctx::bf16_to_f32(w16[i]);  // the same values, already widened
    }
    std::vector<float> x(static_cast<size_t>(max_m * s.k)), y(static_cast<size_t>(max_m * s.n));
    for (float& v : x) v = u(rng);
    for (int64_t m : ms) {
      longctx::cpu::LinearParams p;
      p.x = x.data(), p.w = w16.data(), p.w_dtype = longctx::DType::kBF16, p.y = y.data();
      p.m = m, p.n = s.n, p.k = s.k;
      const double ours = median_ms(repeats, [&] { longctx::cpu::linear(p); });
      const double sgemm =
          median_ms(repeats, [&] { longctx::cpu::sgemm_nt(x.data(), w32.data(), y.data(), m, s.n, s.k); });
      const double floor_ms = static_cast<double>(w16.size() * sizeof(uint16_t)) / bw * 1e3;
      nlohmann::json j = {{"shape", s.name},         {"m", m},         {"n", s.n},
                          {"k", s.k},                {"ours_ms", ours}, {"sgemm_f32_ms", sgemm},
                          {"read_floor_ms", floor_ms}, {"read_gb_s", bw / 1e9}};
      std::printf("%s\n", j.dump().c_str());
      std::fflush(stdout);
    }
  }
  return 0;
}
