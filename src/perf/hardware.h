// HardwareProfile: the small table the cost model reads — effective rates of one device
// (not peak datasheet numbers: what GEMMs, attention kernels and memory copies reach),
// the link used by tensor-parallel all-reduces, and a fixed per-step overhead. A profile
// is a JSON file (`longctx bench profile` writes one for the machine it runs on);
// "cpu", "h100" and "h200" are built in.
#pragma once

#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "core/status.h"

namespace longctx {

struct HardwareProfile {
  std::string name;
  double gemm_flops_per_s = 0;  // dense GEMM in the serving dtype
  double attn_flops_per_s = 0;  // attention kernels (flash/paged), per query-key FLOP
  double mem_bytes_per_s = 0;   // weights and KV streamed from device memory
  double link_bytes_per_s = 0;  // per device, one direction (NVLink); 0: one device only
  double step_overhead_s = 0;   // launch, scheduling, sampling: paid once per step
  double memory_bytes = 0;      // device memory (weights + KV must fit)

  Status validate(const std::string& source) const;
};

// Built-in profiles; unknown names list the choices.
Result<HardwareProfile> builtin_hardware(const std::string& name);
std::vector<std::string> builtin_hardware_names();
// A profile from JSON (every field above by name); errors name `source` and the field.
Result<HardwareProfile> hardware_from_json(const nlohmann::json& j, const std::string& source);
Result<HardwareProfile> load_hardware(const std::filesystem::path& file);
nlohmann::json to_json(const HardwareProfile& p);

}  // namespace longctx
