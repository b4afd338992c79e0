#include "engine/stop_checker.h"

#include <algorithm>

namespace longctx {

StopChecker::StopChecker(std::vector<std::string> stop, bool include_stop_str)
    : stop_(std::move(stop)), include_stop_str_(include_stop_str) {
  for (const auto& s : stop_) max_stop_len_ = std::max(max_stop_len_, s.size());
}

std::optional<std::string> StopChecker::append(const std::string& delta) {
  if (!holding_) return std::nullopt;
  // A stop string can only complete in a window that overlaps the new text.
  const size_t old_len = text_.size();
  text_ += delta;
  if (stop_.empty()) return std::nullopt;
  const size_t from = old_len >= max_stop_len_ ? old_len - max_stop_len_ + 1 : 0;
  size_t best = std::string::npos;
  const std::string* hit = nullptr;
  for (const auto& s : stop_) {
    const size_t at = text_.find(s, from);
    if (at != std::string::npos && at < best) {
      best = at;
      hit = &s;
    }
  }
  if (!hit) return std::nullopt;
  text_.resize(best + (include_stop_str_ ? hit->size() : 0));
  emitted_ = std::min(emitted_, text_.size());
  holding_ = false;
  return *hit;
}

std::string StopChecker::take_ready() {
  size_t ready = text_.size();
  if (holding_ && max_stop_len_ > 0) {
    // Hold back the longest suffix that is a proper prefix of some stop string.
    size_t keep = 0;
    for (const auto& s : stop_) {
      for (size_t k = std::min(s.size() - 1, text_.size()); k > keep; --k) {
        if (text_.compare(text_.size() - k, k, s, 0, k) == 0) {
          keep = k;
          break;
        }
      }
    }
    ready = text_.size() - keep;
  }
  if (ready <= emitted_) return {};
  std::string out = text_.substr(emitted_, ready - emitted_);
  emitted_ = ready;
  return out;
}

}  // namespace longctx
