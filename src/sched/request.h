// A request as the scheduler sees it: token ids and counters, never tensors. The
// engine owns Request objects; the scheduler and kv/ hold plain pointers to them while
// they are waiting or running.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace longctx {

using RequestId = int64_t;

enum class RequestStatus { kWaiting, kRunning, kFinished };

struct Request {
  RequestId id = 0;
  std::vector<int32_t> token_ids;  // prompt followed by the tokens generated so far
  int64_t num_prompt_tokens = 0;
  int64_t max_tokens = 16;         // generated tokens allowed
  std::string cache_salt;          // isolates prefix-cache sharing between tenants
  double arrival_time_s = 0;

  RequestStatus status = RequestStatus::kWaiting;
  // Tokens whose K/V are in the cache. A request has no prefill/decode mode: each step
  // gives it some new tokens until num_computed_tokens catches up with token_ids.
  int64_t num_computed_tokens = 0;
  int64_t num_cached_tokens = -1;  // prefix-cache hit when first scheduled (-1: not yet looked up)
  int64_t num_preemptions = 0;

  int64_t num_tokens() const { return static_cast<int64_t>(token_ids.size()); }
  int64_t num_output_tokens() const { return num_tokens() - num_prompt_tokens; }
  int64_t num_uncomputed_tokens() const { return num_tokens() - num_computed_tokens; }
  bool is_prefilling() const { return num_computed_tokens < num_prompt_tokens; }
};

}  // namespace longctx
