// LayoutShape: the parallel layout as the cost model prices it — the degrees of `plan`'s
// and the runtime's flags (--tp --pp --cp --dcp --kvp --kvp-shard-tokens), plain numbers.
// The runtime's ParallelLayout (parallel/) validates them against a model's heads and
// layers; perf/ sits below it and only needs the degrees.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace longctx {

struct LayoutShape {
  int64_t tp = 1;   // tensor parallel: heads and GEMM columns split, all-reduces per layer
  int64_t pp = 1;   // pipeline stages (Medha's SPP for long prefills)
  int64_t cp = 1;   // context parallel: a prefill's tokens and the KV split over cp ranks
  int64_t dcp = 1;  // decode context parallel inside the TP group (removes KV replication)
  int64_t kvp = 1;  // KV parallel groups (Medha): a long request's KV sharded by tokens
  // Tokens of a request's KV per KVP group before the next group takes over (Medha's
  // shard size); 0: ceil(capacity / kvp), i.e. spill only when a group is full.
  int64_t kvp_shard_tokens = 0;

  int64_t world_size() const { return tp * pp * cp * kvp; }
  // Groups that share a step's requests: cp · kvp TP groups per pipeline stage.
  int64_t groups() const { return cp * kvp; }
  // Every degree >= 1, dcp divides tp; errors name the flag.
  Status validate() const;
  std::string to_string() const;  // "tp=8 kvp=4" (only what differs from 1; "tp=1" alone)
};

}  // namespace longctx
