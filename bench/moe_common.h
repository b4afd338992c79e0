// What the MoE layer benchmarks (moe_bench.cpp, moe_ep_bench.cpp) share: their flags,
// the layer's config (a model directory or a make-model preset), one routed layer of
// seeded random weights, and the clocks and medians they time with.
#pragma once

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"
#include "model/dense_weights.h"
#include "model/presets.h"

namespace longctx::bench {

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// Seconds of a clock_gettime clock: CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID.
inline double clock_seconds(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

inline Tensor random_tensor(const Shape& shape, DType dtype, uint64_t seed, float scale) {
  Tensor f = Tensor::empty(shape, DType::kF32);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  for (int64_t i = 0; i < f.numel(); ++i) f.data<float>()[i] = u(rng);
  return dtype == DType::kF32 ? f : f.to(dtype);
}

// "1,16,256" → {1, 16, 256}.
inline std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, ',');) out.push_back(std::stoll(t));
  return out;
}

// `--name value` pairs into the strings `flags` names; false on any other flag or a
// flag without its value.
inline bool parse_flags(int argc, char** argv, const std::map<std::string, std::string*>& flags) {
  for (int i = 1; i < argc; ++i) {
    const auto it = flags.find(argv[i]);
    if (i + 1 >= argc || it == flags.end()) return false;
    *it->second = argv[++i];
  }
  return true;
}

// --dtype: f32 or bf16 (the experts' storage); reports anything else.
inline std::optional<DType> weight_dtype(const std::string& name) {
  if (name == "f32") return DType::kF32;
  if (name == "bf16") return DType::kBF16;
  std::fprintf(stderr, "--dtype %s: expected f32 or bf16\n", name.c_str());
  return std::nullopt;
}

// --config: a model directory / config.json, or a make-model preset ARCH/NAME. Reports
// what is wrong (unreadable, or not a mixture-of-experts model).
inline std::optional<ModelConfig> moe_config(const std::string& spec) {
  Result<ModelConfig> cfg = [&]() -> Result<ModelConfig> {
    const auto slash = spec.find('/');
    if (slash != std::string::npos && spec.find('/', slash + 1) == std::string::npos) {
      auto p = find_model_preset(spec.substr(0, slash), spec.substr(slash + 1));
      if (p.is_ok()) return parse_model_config(p->config, "preset " + spec);
    }
    return load_model_config(spec);
  }();
  if (!cfg.is_ok()) {
    std::fprintf(stderr, "--config %s: %s\n", spec.c_str(), cfg.status().message().c_str());
    return std::nullopt;
  }
  if (!cfg->is_moe()) {
    std::fprintf(stderr, "--config %s: not a mixture-of-experts model\n", spec.c_str());
    return std::nullopt;
  }
  return *cfg;
}

// One routed layer of seeded random weights: the router (f32, as the loader keeps it,
// and random so routing is near-balanced), experts in `dtype`; DeepSeek's correction
// bias and shared experts when the config has them.
inline DenseLayerWeights random_moe_layer(const ModelConfig& cfg, DType dtype) {
  const int64_t h = cfg.hidden_size, mi = cfg.moe_intermediate_size, e_count = cfg.num_experts;
  DenseLayerWeights lw;
  lw.router = random_tensor({e_count, h}, DType::kF32, 1, 0.5f);
  for (int64_t e = 0; e < e_count; ++e)
    lw.experts.push_back({random_tensor({2 * mi, h}, dtype, 100 + 2 * static_cast<uint64_t>(e), 0.05f),
                          random_tensor({h, mi}, dtype, 101 + 2 * static_cast<uint64_t>(e), 0.05f)});
  if (cfg.arch == Architecture::kDeepseekV3) {
    lw.router_bias = random_tensor({e_count}, DType::kF32, 2, 0.01f);
    if (cfg.n_shared_experts > 0) {
      const int64_t si = mi * cfg.n_shared_experts;
      lw.shared_expert = {random_tensor({2 * si, h}, dtype, 3, 0.05f),
                          random_tensor({h, si}, dtype, 4, 0.05f)};
    }
  }
  return lw;
}

}  // namespace longctx::bench
