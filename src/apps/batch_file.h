// `longctx generate --batch-file requests.jsonl`: one request per line, all run
// concurrently through the engine, one JSON result per line in input order.
#pragma once

#include <optional>
#include <string>

#include "engine/llm_engine.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace longctx::apps {

struct BatchDefaults {
  int64_t max_tokens = 16;
  float temperature = 0.0f;
};

// Reads `path`, runs every valid line, prints results to stdout. A bad line prints
// {"index": i, "error": "..."} and the others still run. Returns the exit code.
int run_batch_file(const std::string& path, LLMEngine& engine, const Tokenizer* tokenizer,
                   const ChatTemplate* chat_template, const BatchDefaults& defaults);

}  // namespace longctx::apps
