// The parallel-layout flags (--tp --pp --cp --dcp --kvp --dcp-interleave
// --kvp-shard-tokens --ep --helix), registered in one place for every command that takes a layout
// (generate, serve, plan) and read into one ParallelConfig, so they parse and validate
// alike everywhere. A new scheme's flag is one line in add_layout_flags.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "core/status.h"
#include "model/config.h"
#include "parallel/parallel_layout.h"

namespace longctx::apps {

// The exit code of a command given an impossible layout (a usage error, as CLI11's).
inline constexpr int kLayoutErrorExitCode = 2;

// Registers the layout flags on `cmd`, writing into `cfg` (its current values are the defaults).
void add_layout_flags(CLI::App& cmd, ParallelConfig& cfg);

// What of a model a layout depends on (ShardedDenseModel's: MLA counts one kv head).
LayoutModelDims layout_dims(const ModelConfig& mc);

// ParallelLayout::validate for `cfg` under the model in `model_dir` (its config.json);
// the message names the flag and the rule that broke.
Status validate_layout(const ParallelConfig& cfg, const std::string& model_dir);

// For commands: validates as above; when a rule breaks, prints "error: <message>" and
// returns kLayoutErrorExitCode, else 0 (also when the config does not load: the model
// loader reports that).
int check_layout_or_exit(const ParallelConfig& cfg, const std::string& model_dir);

}  // namespace longctx::apps
