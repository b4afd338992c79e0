// Summaries of a simulation: per length class (short/long split at a prompt length),
// TTFT / TBT / E2E percentiles in seconds and throughput, as JSON or a text table.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "sim/simulator.h"

namespace longctx {

struct ClassStats {
  std::string name;
  int64_t count = 0;     // finished requests
  int64_t rejected = 0;  // refused at admission
  double ttft_p50 = 0, ttft_p90 = 0, ttft_p99 = 0, tbt_p50 = 0, tbt_p90 = 0, tbt_p99 = 0, e2e_p50 = 0;
  double throughput_tok_s = 0;  // prompt + output tokens of the class's finished requests / duration
  double output_tok_s = 0;
};

// Linear interpolation between closest ranks (numpy's default); 0 for no values.
double percentile(std::vector<double> values, double p);

// Busy time over replica time: busy_s / (duration_s · num_replicas).
double utilisation(const SimResult& r);

// A report class: requests whose prompt has [min_tokens, max_tokens) tokens.
struct LengthClass {
  std::string name;
  int64_t min_tokens = 0;
  int64_t max_tokens = -1;  // exclusive; -1: no upper bound
};

// simulate's --classes: "NAME:LO-HI,..." with HI left out for no upper bound, e.g.
// "short:0-32768,long:32768-". Errors name the item: a missing ':' or '-', a bound that
// is not a non-negative integer, HI <= LO, an empty, repeated or reserved ("all") name,
// overlapping ranges.
Result<std::vector<LengthClass>> parse_classes(const std::string& spec);
// "short" [0, long_threshold) and "long" [long_threshold, ∞).
std::vector<LengthClass> default_classes(int64_t long_threshold = 32768);

// One ClassStats per class (in the given order; a request counts in the first class
// whose range holds its prompt, or in none), then "all".
std::vector<ClassStats> summarize(const SimResult& r, const std::vector<LengthClass>& classes);
// Classes "short" (prompt < long_threshold tokens), "long" and "all".
std::vector<ClassStats> summarize(const SimResult& r, int64_t long_threshold = 32768);
nlohmann::json to_json(const SimResult& r, const std::vector<ClassStats>& classes);
// Per request: prompt/output tokens, arrival, ttft_s, tbt_s (list), e2e_s, pool, replica.
nlohmann::json requests_json(const SimResult& r);
std::string format_table(const SimResult& r, const std::vector<ClassStats>& classes);

}  // namespace longctx
