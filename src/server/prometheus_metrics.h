// /metrics in the Prometheus text format (0.0.4) under vLLM's metric names, which
// dashboards and autoscalers expect, each labelled with model_name; plus longctx's own
// (longctx:) for the parallel layout and per-rank KV use.
#pragma once

#include <cstdint>
#include <string>

#include "engine/metrics.h"

namespace longctx::server {

struct MetricsInfo {
  std::string model_name;
  int64_t num_kv_blocks = 0;
  int64_t block_size = 0;
  int64_t active_requests = 0;  // admitted by the server, not finished
  // The parallel layout (a single rank until exec/ spreads over more).
  int64_t tp = 1, pp = 1, cp = 1, dcp = 1, kvp = 1;
};

std::string render_prometheus(const EngineMetricsSnapshot& m, const MetricsInfo& info);

}  // namespace longctx::server
