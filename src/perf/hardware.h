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

// A step-time fit on measured engine steps (`bench profile --model`), for devices where
// the roofline terms are too coarse (a CPU: per-token work outside the GEMMs, per-
// sequence sampling and bookkeeping). Predicted step time =
//   step_s + per_seq_s · sequences + per_token_s · tokens + per_pair_s · query-key pairs
//   + per_kv_token_s · KV tokens read (each chunk's context and new tokens)
//   + per_narrow_token_s · tokens · [tokens ≤ small_m]
//   + wide_gemm_s · [tokens > small_m] + wide_head_s · [sequences > small_m]
//   + gemm_scale · roofline GEMM time (max of FLOPs / gemm rate, weight bytes / bandwidth).
// Pairs price attention's arithmetic (a prefill chunk reuses every key for many queries);
// KV tokens price streaming the cache, which is what a decode's attention costs: one
// query per key, so a decode at a long context reads far more bytes per pair.
// The last three terms are a backend's GEMM regime switch: the CPU's linear streams W once
// for up to small_m rows, computing each row's dot products on the fly (a row costs more
// there: per_narrow_token_s on top of per_token_s), and widens all of W to fp32 above that
// and runs sgemm (ops/cpu/linear.h) — a fixed cost per step for the layers once a step has
// more than small_m tokens, and for the LM head once more than small_m sequences sample
// (with the switch at 4 rows a decode step of 5 sequences cost twice one of 4 on the 0.6B
// shape; the switch is at 16 or 32 rows since the streaming path was register-tiled:
// ops/cpu/linear.h). small_m = 0: none.
// All coefficients >= 0 (a non-negative least-squares fit).
struct StepCalibration {
  std::string model;  // what it was fitted on (a name for people)
  double layer_params_per_token = 0, attn_flops_per_pair = 0;  // the shape it applies to
  double step_s = 0, per_seq_s = 0, per_token_s = 0, per_pair_s = 0, gemm_scale = 0;
  double per_kv_token_s = 0;  // absent in tables written before it (read as 0)
  double per_narrow_token_s = 0, wide_gemm_s = 0, wide_head_s = 0;  // likewise
  int64_t small_m = 0;
  int64_t num_samples = 0;  // measured steps behind the fit
  double rms_rel_error = 0;  // of the fit on those steps
};

struct HardwareProfile {
  std::string name;
  double gemm_flops_per_s = 0;  // dense GEMM in the serving dtype
  double attn_flops_per_s = 0;  // attention kernels (flash/paged), per query-key FLOP
  double mem_bytes_per_s = 0;   // weights and KV streamed from device memory
  double link_bytes_per_s = 0;  // per device, one direction (NVLink); 0: one device only
  double step_overhead_s = 0;   // launch, scheduling, sampling: paid once per step
  double memory_bytes = 0;      // device memory (weights + KV must fit)
  // Between TP groups (KVP merges, CP ring, PP hand-off across hosts): per device, one
  // direction, e.g. 400 Gb/s InfiniBand = 5e10. 0: link_bytes_per_s.
  double net_bytes_per_s = 0;
  // Fitted by `bench profile` from measured steps of one model (StepCalibration); the
  // cost model uses the one whose model shape matches its own, else the roofline.
  std::vector<StepCalibration> calibrations;

  double inter_group_bytes_per_s() const { return net_bytes_per_s > 0 ? net_bytes_per_s : link_bytes_per_s; }
  // The calibration fitted on a model of this shape (params/token and FLOPs/pair within
  // 1%), or nullptr.
  const StepCalibration* calibration_for(double layer_params_per_token, double attn_flops_per_pair) const;
  Status validate(const std::string& source) const;
};

// Built-in profiles; unknown names list the choices.
Result<HardwareProfile> builtin_hardware(const std::string& name);
std::vector<std::string> builtin_hardware_names();
// A profile from JSON (every field above by name); errors name `source` and the field.
Result<HardwareProfile> hardware_from_json(const nlohmann::json& j, const std::string& source);
Result<HardwareProfile> load_hardware(const std::filesystem::path& file);
// A built-in name ("cpu", "h100", "h200") or the path of a profile file (what
// `bench profile` writes): one flag for both (the engine's --hardware).
Result<HardwareProfile> hardware_profile(const std::string& name_or_file);
nlohmann::json to_json(const HardwareProfile& p);

}  // namespace longctx
