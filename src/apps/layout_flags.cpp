#include "apps/layout_flags.h"

#include <cstdio>

#include "model/sharded_dense_model.h"

namespace longctx::apps {

void add_layout_flags(CLI::App& cmd, ParallelConfig& c) {
  const auto add = [&cmd](const char* name, auto& field, const char* help) {
    cmd.add_option(name, field, help)->capture_default_str()->group("Parallel layout");
  };
  add("--tp", c.tp, "Tensor-parallel ranks (attention heads and MLP split Megatron-style)");
  add("--pp", c.pp, "Pipeline stages (layers split over them)");
  add("--cp", c.cp, "Context-parallel ranks for prefill (ring attention, zig-zag token split)");
  add("--dcp", c.dcp, "Decode context parallelism inside the TP group (KV sharded along tokens)");
  add("--kvp", c.kvp, "KV-parallel groups (Medha): a long request's KV in contiguous shards");
  add("--dcp-interleave", c.dcp_interleave, "DCP token interleave: 1 (round-robin) or a multiple of the block size");
  add("--kvp-shard-tokens", c.kvp_shard_tokens, "Tokens per KVP group before the next group takes over");
  add("--ep", c.ep, "Expert-parallel ranks for MoE models (routed experts split over them, inside a stage)");
  cmd.add_flag("--helix", c.helix, "Helix: attention over kvp x tp ranks (KV over KVP, heads over TP), FFN as TP kvp*tp")
      ->group("Parallel layout");
}

LayoutModelDims layout_dims(const ModelConfig& mc) { return ShardedDenseModel::layout_dims(mc); }

Status validate_layout(const ParallelConfig& cfg, const std::string& model_dir) {
  auto mc = load_model_config(model_dir);
  if (!mc.is_ok()) return mc.status();
  return ParallelLayout::validate(cfg, layout_dims(*mc));
}

int check_layout_or_exit(const ParallelConfig& cfg, const std::string& model_dir) {
  // A model that does not load is the loader's error to report (exit 1), not a layout's.
  auto mc = load_model_config(model_dir);
  if (!mc.is_ok()) return 0;
  const Status st = ParallelLayout::validate(cfg, layout_dims(*mc));
  if (st.is_ok()) return 0;
  std::fprintf(stderr, "error: %s\n", st.message().c_str());
  return kLayoutErrorExitCode;
}

}  // namespace longctx::apps
