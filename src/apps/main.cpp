// longctx: long-context LLM serving. Entry point of the CLI.
#include <cstdio>
#include <exception>

#include "apps/commands.h"
#include "core/logging.h"

namespace longctx::apps {

int fail(const std::string& message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return 1;
}

CLI::App* bench_group(CLI::App& app) {
  try {
    return app.get_subcommand("bench");
  } catch (const CLI::OptionNotFound&) {
    CLI::App* bench = app.add_subcommand("bench", "Benchmarks");
    bench->require_subcommand(1);
    return bench;
  }
}

}  // namespace longctx::apps

int main(int argc, char** argv) {
  longctx::init_logging();
  CLI::App app{"longctx: a serving engine for long-context LLM inference"};
  app.require_subcommand(1);
  longctx::apps::CommandRunner run;
  longctx::apps::add_generate_command(app, run);
  longctx::apps::add_tokenize_command(app, run);
  longctx::apps::add_make_model_command(app, run);
  longctx::apps::add_simulate_command(app, run);
  longctx::apps::add_serve_command(app, run);
  longctx::apps::add_plan_command(app, run);
  longctx::apps::add_bench_serve_command(app, run);
  longctx::apps::add_bench_profile_command(app, run);
  longctx::apps::add_bench_latency_command(app, run);
  CLI11_PARSE(app, argc, argv);
  try {
    return run ? run() : 0;
  } catch (const std::exception& e) {  // a bug, not bad input: still say what happened
    return longctx::apps::fail(std::string("internal error: ") + e.what());
  }
}
