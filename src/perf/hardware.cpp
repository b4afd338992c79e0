#include "perf/hardware.h"

#include <algorithm>
#include <cmath>
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
// Between hosts: 8 × 400 Gb/s InfiniBand NICs per 8-GPU host, 50 GB/s per GPU.
const HardwareProfile kBuiltins[] = {
    {"cpu", 5.6e10, 2.0e10, 1.2e10, 0.0, 2.0e-3, 16e9, 0.0, {}},
    {"h100", 6.0e14, 4.5e14, 3.0e12, 4.5e11, 5.0e-4, 80e9, 5.0e10, {}},
    {"h200", 6.0e14, 4.5e14, 4.3e12, 4.5e11, 5.0e-4, 141e9, 5.0e10, {}},
};

bool near(double a, double b) { return std::abs(a - b) <= 0.01 * std::max(std::abs(a), std::abs(b)); }

Result<StepCalibration> calibration_from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) return invalid_argument(where + " must be a JSON object");
  StepCalibration c;
  c.model = j.value("model", std::string());
  const std::pair<const char*, double*> fields[] = {
      {"layer_params_per_token", &c.layer_params_per_token}, {"attn_flops_per_pair", &c.attn_flops_per_pair},
      {"step_s", &c.step_s}, {"per_seq_s", &c.per_seq_s}, {"per_token_s", &c.per_token_s},
      {"per_pair_s", &c.per_pair_s}, {"gemm_scale", &c.gemm_scale}};
  for (auto [key, out] : fields) {
    auto it = j.find(key);
    if (it == j.end()) return invalid_argument(where + ": missing field \"" + key + "\"");
    if (!it->is_number() || !(it->get<double>() >= 0))
      return invalid_argument(where + ": field \"" + key + "\" must be a number >= 0");
    *out = it->get<double>();
  }
  // Terms added after the first tables: optional, 0 when absent.
  const std::pair<const char*, double*> optional_fields[] = {
      {"per_kv_token_s", &c.per_kv_token_s},
      {"per_narrow_token_s", &c.per_narrow_token_s},
      {"wide_gemm_s", &c.wide_gemm_s},
      {"wide_head_s", &c.wide_head_s}};
  for (auto [key, out] : optional_fields)
    if (auto it = j.find(key); it != j.end()) {
      if (!it->is_number() || !(it->get<double>() >= 0))
        return invalid_argument(where + ": field \"" + key + "\" must be a number >= 0");
      *out = it->get<double>();
    }
  if (auto it = j.find("small_m"); it != j.end()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0)
      return invalid_argument(where + ": field \"small_m\" must be an integer >= 0");
    c.small_m = it->get<int64_t>();
  }
  c.num_samples = j.value("num_samples", int64_t{0});
  c.rms_rel_error = j.value("rms_rel_error", 0.0);
  return c;
}

}  // namespace

const StepCalibration* HardwareProfile::calibration_for(double layer_params_per_token,
                                                        double attn_flops_per_pair) const {
  for (const StepCalibration& c : calibrations)
    if (near(c.layer_params_per_token, layer_params_per_token) && near(c.attn_flops_per_pair, attn_flops_per_pair))
      return &c;
  return nullptr;
}

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
  if (link_bytes_per_s < 0 || step_overhead_s < 0 || net_bytes_per_s < 0)
    return invalid_argument(source +
                            ": \"link_bytes_per_s\", \"net_bytes_per_s\" and \"step_overhead_s\" must be >= 0");
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
      {"step_overhead_s", &p.step_overhead_s, false},  {"memory_bytes", &p.memory_bytes, true},
      {"net_bytes_per_s", &p.net_bytes_per_s, false}};
  for (const Field& f : fields) {
    auto it = j.find(f.key);
    if (it == j.end()) {
      if (f.required) return invalid_argument(source + ": missing field \"" + f.key + "\"");
      continue;
    }
    if (!it->is_number()) return invalid_argument(source + ": field \"" + f.key + "\" must be a number");
    *f.out = it->get<double>();
  }
  if (auto it = j.find("calibrations"); it != j.end()) {
    if (!it->is_array()) return invalid_argument(source + ": field \"calibrations\" must be an array");
    for (size_t i = 0; i < it->size(); ++i) {
      auto c = calibration_from_json((*it)[i], source + ": calibrations[" + std::to_string(i) + "]");
      if (!c.is_ok()) return c.status();
      p.calibrations.push_back(*c);
    }
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

Result<HardwareProfile> hardware_profile(const std::string& name_or_file) {
  for (const auto& p : kBuiltins)
    if (p.name == name_or_file) return p;
  if (std::filesystem::exists(name_or_file)) return load_hardware(name_or_file);
  auto builtin = builtin_hardware(name_or_file);  // the error lists the names
  return invalid_argument(name_or_file + ": neither a built-in hardware profile nor a file (" +
                          builtin.status().message() + ")");
}

nlohmann::json to_json(const HardwareProfile& p) {
  nlohmann::json calibrations = nlohmann::json::array();
  for (const StepCalibration& c : p.calibrations)
    calibrations.push_back({{"model", c.model},
                            {"layer_params_per_token", c.layer_params_per_token},
                            {"attn_flops_per_pair", c.attn_flops_per_pair},
                            {"step_s", c.step_s},
                            {"per_seq_s", c.per_seq_s},
                            {"per_token_s", c.per_token_s},
                            {"per_pair_s", c.per_pair_s},
                            {"per_kv_token_s", c.per_kv_token_s},
                            {"per_narrow_token_s", c.per_narrow_token_s},
                            {"wide_gemm_s", c.wide_gemm_s},
                            {"wide_head_s", c.wide_head_s},
                            {"small_m", c.small_m},
                            {"gemm_scale", c.gemm_scale},
                            {"num_samples", c.num_samples},
                            {"rms_rel_error", c.rms_rel_error}});
  return {{"name", p.name},
          {"gemm_flops_per_s", p.gemm_flops_per_s},
          {"attn_flops_per_s", p.attn_flops_per_s},
          {"mem_bytes_per_s", p.mem_bytes_per_s},
          {"link_bytes_per_s", p.link_bytes_per_s},
          {"step_overhead_s", p.step_overhead_s},
          {"memory_bytes", p.memory_bytes},
          {"net_bytes_per_s", p.net_bytes_per_s},
          {"calibrations", calibrations}};
}

}  // namespace longctx
