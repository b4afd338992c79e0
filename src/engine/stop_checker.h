// Stop strings on streamed text. Text that might still turn out to be the start of a
// stop string is held back, so a client never sees part of a stop string; when one
// completes, the text ends just before it (or just after, with include_stop_str).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace longctx {

class StopChecker {
 public:
  StopChecker(std::vector<std::string> stop, bool include_stop_str);

  // Adds newly decoded text. Returns the stop string when one completed.
  std::optional<std::string> append(const std::string& delta);
  // Text safe to emit now that was not emitted before (all of it once stopped/flushed).
  std::string take_ready();
  // At the end of generation without a stop string: everything held back is released.
  void flush() { holding_ = false; }
  const std::string& text() const { return text_; }

 private:
  std::vector<std::string> stop_;
  bool include_stop_str_;
  size_t max_stop_len_ = 0;
  std::string text_;     // the output text so far (truncated at a stop string)
  size_t emitted_ = 0;   // bytes of text_ already handed out
  bool holding_ = true;  // false once stopped or flushed
};

}  // namespace longctx
