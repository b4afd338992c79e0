#include "engine/step_log.h"

#include <cerrno>
#include <cstring>
#include <string>

namespace longctx {

Result<std::unique_ptr<StepLog>> StepLog::open(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return invalid_argument("--step-log " + path + ": " + std::strerror(errno));
  return std::unique_ptr<StepLog>(new StepLog(f));
}

StepLog::~StepLog() { std::fclose(f_); }

void StepLog::record(const StepPlan& plan, double start_s, double seconds) {
  std::string line = "{\"t\": " + std::to_string(start_s) + ", \"dur\": " + std::to_string(seconds) + ", \"chunks\": [";
  for (size_t i = 0; i < plan.chunks.size(); ++i) {
    const ScheduledChunk& c = plan.chunks[i];
    if (i) line += ", ";
    line += "[" + std::to_string(c.request_id) + ", " + std::to_string(c.start) + ", " + std::to_string(c.num_tokens) + "]";
  }
  line += "], \"preempted\": [";
  for (size_t i = 0; i < plan.preempted.size(); ++i) line += (i ? ", " : "") + std::to_string(plan.preempted[i]);
  line += "]}\n";
  std::fputs(line.c_str(), f_);
  std::fflush(f_);
}

}  // namespace longctx
