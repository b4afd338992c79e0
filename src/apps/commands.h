// Subcommands of the `longctx` CLI. Each registers its flags on the app and returns
// the function that runs it once parsing succeeded (exit code as the result).
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace longctx::apps {

using CommandRunner = std::function<int()>;

void add_generate_command(CLI::App& app, CommandRunner& run);
void add_tokenize_command(CLI::App& app, CommandRunner& run);
void add_make_model_command(CLI::App& app, CommandRunner& run);
void add_simulate_command(CLI::App& app, CommandRunner& run);
void add_serve_command(CLI::App& app, CommandRunner& run);
void add_plan_command(CLI::App& app, CommandRunner& run);
void add_bench_serve_command(CLI::App& app, CommandRunner& run);
void add_bench_profile_command(CLI::App& app, CommandRunner& run);
void add_bench_latency_command(CLI::App& app, CommandRunner& run);

// The `bench` group that the benchmark programs (serve, profile, latency) hang under,
// created by whichever registers first.
CLI::App* bench_group(CLI::App& app);

// Prints "error: <message>" to stderr and returns the CLI's failure exit code (1).
int fail(const std::string& message);

}  // namespace longctx::apps
