// Request traces for the simulator (and, by the same file format, `bench serve`): JSON
// lines {"arrival_s": 0.5, "prompt_tokens": 1000000, "output_tokens": 128}, or a
// generated workload — Poisson arrivals with a mix of prompt lengths.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/status.h"

namespace longctx {

struct TraceRequest {
  double arrival_s = 0;
  int64_t prompt_tokens = 0;
  int64_t output_tokens = 0;
};

// Sorted by arrival (stable: equal arrivals keep file order). Errors name the line.
Result<std::vector<TraceRequest>> load_trace(const std::filesystem::path& file);
Status write_trace(const std::filesystem::path& file, const std::vector<TraceRequest>& trace);

// A workload spec, "mix:" then comma-separated key=value:
//   n=1000            requests
//   rate=2            Poisson arrivals, requests per second
//   prompts=0.98@1k-8k+0.02@1m   length mix: weight@lo-hi (log-uniform in [lo, hi]) or
//                     weight@len, components joined by '+'; weights are normalised
//   out=128-512       output tokens (uniform in [lo, hi], or one value)
//   seed=1
// Lengths take k (×1024) and m (×1024²) suffixes: 128k = 131072, 1m = 1048576.
Result<std::vector<TraceRequest>> generate_workload(const std::string& spec);

}  // namespace longctx
