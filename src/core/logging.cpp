#include "core/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>

namespace longctx {

void init_logging() {
  static bool done = false;
  if (done) return;
  done = true;
  auto logger = spdlog::stderr_color_mt("longctx");
  spdlog::set_default_logger(logger);
  const char* env = std::getenv("LONGCTX_LOG");
  spdlog::set_level(env ? spdlog::level::from_str(env) : spdlog::level::warn);
}

}  // namespace longctx
