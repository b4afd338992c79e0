#include "perf/hardware.h"

#include <fstream>
#include <nlohmann/json.hpp>

namespace longctx {
namespace {

// Effective rates (why not peak): H100 SXM bf16 dense is 989 TFLOP/s on paper, large
// GEMMs reach ~600 in practice and flash attention ~450 on long contexts; HBM3 3.35 TB/s
// (H200 HBM3e 4.8 TB/s) streams at ~90%. NVLink 4: 450 GB/s per direction per GPU.
// The step overhead is a CUDA-graph decode step's launch + sampling + scheduling.
// "cpu" was calibrated on this repo's 2-core Xeon CI machine from bench/RESULTS.md
// (qwen3/0.6b bf16: 512-token prefill at 46.5 tok/s → ~56 GFLOP/s of GEMM; decode at
// 10.2 tok/s over 1.2 GB of weights → ~12 GB/s; qwen3/tiny decode at 465 tok/s → ~2 ms
// per step of fixed cost).
const HardwareProfile kBuiltins[] = {
    {"cpu", 5.6e10, 2.0e10, 1.2e10, 0.0, 2.0e-3, 16e9},
    {"h100", 6.0e14, 4.5e14, 3.0e12, 4.5e11, 5.0e-4, 80e9},
    {"h200", 6.0e14, 4.5e14, 4.3e12, 4.5e11, 5.0e-4, 141e9},
};

}  // namespace

Status HardwareProfile::validate(const std::string& source) const {
  auto positive = [&](double v, const char* field) -> Status {
    if (!(v > 0))
      return invalid_argument(source + ": \"" + field + "\" must be > 0, got " + std::to_string(v));
    return Status::ok();
  };
  for (auto [v, f] : {std::pair{gemm_flops_per_s, "gemm_flops_per_s"},
                      {attn_flops_per_s, "attn_flops_per_s"},
                      {mem_bytes_per_s, "mem_bytes_per_s"},
                      {memory_bytes, "memory_bytes"}})
    if (Status st = positive(v, f); !st.is_ok()) return st;
  if (link_bytes_per_s < 0 || step_overhead_s < 0)
    return invalid_argument(source + ": \"link_bytes_per_s\" and \"step_overhead_s\" must be >= 0");
  return Status::ok();
}

std::vector<std::string> builtin_hardware_names() {
  std::vector<std::string> names;
  for (const auto& p : kBuiltins) names.push_back(p.name);
  return names;
}

Result<HardwareProfile> builtin_hardware(const std::string& name) {
  for (const auto& p : kBuiltins)
    if (p.name == name) return p;
  std::string names;
  for (const auto& n : builtin_hardware_names()) names += (names.empty() ? "" : ", ") + n;
  return invalid_argument("--gpu " + name + ": unknown hardware profile (built in: " + names +
                          "; or pass a profile file with --hardware)");
}

Result<HardwareProfile> hardware_from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) return invalid_argument(source + ": a hardware profile must be a JSON object");
  HardwareProfile p;
  p.name = j.value("name", std::string("custom"));
  struct Field {
    const char* key;
    double* out;
    bool required;
  };
  const Field fields[] = {
      {"gemm_flops_per_s", &p.gemm_flops_per_s, true}, {"attn_flops_per_s", &p.attn_flops_per_s, true},
      {"mem_bytes_per_s", &p.mem_bytes_per_s, true},   {"link_bytes_per_s", &p.link_bytes_per_s, false},
      {"step_overhead_s", &p.step_overhead_s, false},  {"memory_bytes", &p.memory_bytes, true}};
  for (const Field& f : fields) {
    auto it = j.find(f.key);
    if (it == j.end()) {
      if (f.required) return invalid_argument(source + ": missing field \"" + f.key + "\"");
      continue;
    }
    if (!it->is_number()) return invalid_argument(source + ": field \"" + f.key + "\" must be a number");
    *f.out = it->get<double>();
  }
  if (Status st = p.validate(source); !st.is_ok()) return st;
  return p;
}

Result<HardwareProfile> load_hardware(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) return not_found("cannot open hardware profile " + file.string());
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return invalid_argument(file.string() + ": not valid JSON");
  return hardware_from_json(j, file.string());
}

nlohmann::json to_json(const HardwareProfile& p) {
  return {{"name", p.name},
          {"gemm_flops_per_s", p.gemm_flops_per_s},
          {"attn_flops_per_s", p.attn_flops_per_s},
          {"mem_bytes_per_s", p.mem_bytes_per_s},
          {"link_bytes_per_s", p.link_bytes_per_s},
          {"step_overhead_s", p.step_overhead_s},
          {"memory_bytes", p.memory_bytes}};
}

}  // namespace longctx
