// The engine tests' requests and driving loop (tests/engine/): greedy requests, a mixed
// workload of the transformers golden prompts and random ones, and stepping an engine
// until its requests finish, collecting each request's tokens.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "engine/llm_engine.h"
#include "support/fixtures.h"

namespace longctx::testing_support {

inline GenerationRequest greedy_request(std::vector<int32_t> prompt, int64_t max_tokens) {
  GenerationRequest r;
  r.prompt_token_ids = std::move(prompt);
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0;
  r.ignore_eos = true;  // the fixtures' greedy outputs run to their length
  return r;
}

// Steps until every request finished (or `max_steps` steps), adding each request's new
// tokens to `out` and, where `reasons` is given, its finish reason.
inline void run_steps(LLMEngine& e, std::map<RequestId, std::vector<int32_t>>& out, int max_steps = 100000,
                      std::map<RequestId, std::string>* reasons = nullptr) {
  for (int steps = 0; e.has_unfinished() && steps < max_steps; ++steps)
    for (const RequestOutput& o : e.step()) {
      auto& v = out[o.request_id];
      v.insert(v.end(), o.new_token_ids.begin(), o.new_token_ids.end());
      if (o.finished && reasons) (*reasons)[o.request_id] = o.finish_reason;
    }
}

// Runs every request to completion; returns the generated ids per request id.
inline std::map<RequestId, std::vector<int32_t>> run_all(
    LLMEngine& e, std::map<RequestId, std::string>* reasons = nullptr) {
  std::map<RequestId, std::vector<int32_t>> out;
  run_steps(e, out, 100000, reasons);
  EXPECT_FALSE(e.has_unfinished());
  return out;
}

// Adds the requests in order; their ids, or the first rejection.
inline Result<std::vector<RequestId>> add_requests(LLMEngine& e,
                                                   const std::vector<GenerationRequest>& requests) {
  std::vector<RequestId> ids;
  for (const GenerationRequest& r : requests) {
    LONGCTX_ASSIGN_OR_RETURN(RequestId id, e.add_request(r));
    ids.push_back(id);
  }
  return ids;
}

struct Workload {
  std::vector<GenerationRequest> requests;
  std::vector<std::vector<int32_t>> golden;  // transformers' greedy tokens, or empty (a random prompt)
};

// The random prompts beside the golden ones: `count` prompts (the first of one token,
// the others of 1..max_len), each asking for 1..max_tokens tokens.
struct RandomPrompts {
  int count = 0;
  int64_t max_len = 0, max_tokens = 0;
  uint32_t seed = 0;
};

// The model's golden prompts, then the random ones.
inline Workload mixed_workload(const std::string& model, const RandomPrompts& random) {
  Workload w;
  for (const Golden& g : load_goldens(model)) {
    w.requests.push_back(greedy_request(g.ids, static_cast<int64_t>(g.greedy.size())));
    w.golden.push_back(g.greedy);
  }
  std::mt19937 rng(random.seed);
  for (int i = 0; i < random.count; ++i) {
    const int64_t len = i == 0 ? 1 : 1 + static_cast<int64_t>(rng() % random.max_len);
    std::vector<int32_t> p(static_cast<size_t>(len));
    for (auto& t : p) t = static_cast<int32_t>(3 + rng() % 500);
    w.requests.push_back(greedy_request(p, 1 + static_cast<int64_t>(rng() % random.max_tokens)));
    w.golden.push_back({});
  }
  return w;
}

}  // namespace longctx::testing_support
