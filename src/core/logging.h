// Logging: spdlog underneath; one process-wide logger named "longctx" writing to stderr
// (stdout stays clean for --json output).
#pragma once

#include <spdlog/spdlog.h>

namespace longctx {

// Level from LONGCTX_LOG (trace, debug, info, warn, error, off); default warn.
void init_logging();

#define LCTX_LOG_DEBUG(...) ::spdlog::debug(__VA_ARGS__)
#define LCTX_LOG_INFO(...) ::spdlog::info(__VA_ARGS__)
#define LCTX_LOG_WARN(...) ::spdlog::warn(__VA_ARGS__)
#define LCTX_LOG_ERROR(...) ::spdlog::error(__VA_ARGS__)

}  // namespace longctx
