// Single-sequence generation over a DenseModel: prefill the prompt (in chunks when
// asked), then decode one token at a time. `longctx generate` and the golden tests use
// it; serving many requests at once is the engine's job.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/dense_model.h"

namespace longctx {

struct GenerationOptions {
  int64_t max_new_tokens = 16;
  float temperature = 0.0f;  // 0: greedy
  uint64_t seed = 0;
  std::vector<int32_t> stop_token_ids;  // generation ends after emitting one of these
  int64_t prefill_chunk_tokens = 0;     // 0: the whole prompt in one forward
};

struct GenerationResult {
  std::vector<int32_t> token_ids;
  std::string finish_reason;  // "length" or "stop"
};

// on_token (optional) sees each generated id as it is produced (for streaming).
Result<GenerationResult> generate(const DenseModel& model, std::span<const int32_t> prompt,
                                  const GenerationOptions& opts,
                                  const std::function<void(int32_t)>& on_token = {});

}  // namespace longctx
