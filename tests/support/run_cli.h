// Runs the `longctx` binary (LONGCTX_BINARY) with arguments and captures its output.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <memory>
#include <string>

namespace longctx::testing_support {

struct CliResult {
  int code;
  std::string out;
};

// `redirect` is appended to the shell command: "2>&1" (stdout and stderr together) or
// "2>/dev/null" (stdout only).
inline CliResult run_cli(const std::string& args, const std::string& redirect = "2>&1") {
  const std::string cmd = std::string(LONGCTX_BINARY) + " " + args + " " + redirect;
  std::unique_ptr<FILE, int (*)(FILE*)> p(popen(cmd.c_str(), "r"), pclose);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p.get())) > 0) out.append(buf.data(), n);
  const int status = pclose(p.release());
  return {WEXITSTATUS(status), out};
}

}  // namespace longctx::testing_support
