#include "perf/layout.h"

namespace longctx {

Status LayoutShape::validate() const {
  for (auto [v, flag] : {std::pair{tp, "--tp"}, {pp, "--pp"}, {cp, "--cp"}, {dcp, "--dcp"}, {kvp, "--kvp"}})
    if (v < 1) return invalid_argument(std::string(flag) + " must be >= 1, got " + std::to_string(v));
  if (tp % dcp != 0)
    return invalid_argument("--dcp " + std::to_string(dcp) + " must divide --tp " + std::to_string(tp));
  if (kvp_shard_tokens < 0)
    return invalid_argument("--kvp-shard-tokens must be >= 0, got " + std::to_string(kvp_shard_tokens));
  return Status::ok();
}

std::string LayoutShape::to_string() const {
  std::string s = "tp=" + std::to_string(tp);
  for (auto [v, name] : {std::pair{dcp, "dcp"}, {cp, "cp"}, {kvp, "kvp"}, {pp, "pp"}})
    if (v != 1) s += std::string(" ") + name + "=" + std::to_string(v);
  return s;
}

}  // namespace longctx
