#include "sim/report.h"

#include <optional>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace longctx {

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double pos = p / 100.0 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos)), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

double utilisation(const SimResult& r) {
  const double capacity = r.duration_s * static_cast<double>(std::max<int64_t>(1, r.num_replicas));
  return capacity > 0 ? r.busy_s / capacity : 0.0;
}

namespace {

// A non-negative integer, all of `text`; nullopt otherwise.
std::optional<int64_t> parse_bound(const std::string& text) {
  if (text.empty() || text.size() > 18) return std::nullopt;
  int64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

}  // namespace

Result<std::vector<LengthClass>> parse_classes(const std::string& spec) {
  std::vector<LengthClass> out;
  if (spec.empty()) return invalid_argument("--classes is empty; expected NAME:LO-HI,... e.g. short:0-32768,long:32768-");
  size_t pos = 0;
  while (pos <= spec.size()) {
    const size_t comma = spec.find(',', pos);
    const std::string item = spec.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? spec.size() + 1 : comma + 1;
    const std::string where = "--classes item '" + item + "': ";
    const size_t colon = item.find(':');
    if (colon == std::string::npos) return invalid_argument(where + "expected NAME:LO-HI (HI may be left out)");
    LengthClass c;
    c.name = item.substr(0, colon);
    if (c.name.empty()) return invalid_argument(where + "the name is empty");
    if (c.name == "all") return invalid_argument(where + "'all' is reserved (every request is reported as 'all')");
    const std::string range = item.substr(colon + 1);
    const size_t dash = range.find('-');
    if (dash == std::string::npos) return invalid_argument(where + "expected a range LO-HI of prompt tokens");
    const auto lo = parse_bound(range.substr(0, dash));
    if (!lo) return invalid_argument(where + "LO must be a non-negative integer, got '" + range.substr(0, dash) + "'");
    c.min_tokens = *lo;
    const std::string hi_text = range.substr(dash + 1);
    if (!hi_text.empty()) {
      const auto hi = parse_bound(hi_text);
      if (!hi) return invalid_argument(where + "HI must be a non-negative integer or left out, got '" + hi_text + "'");
      if (*hi <= *lo) return invalid_argument(where + "HI (" + hi_text + ") must be above LO (" + std::to_string(*lo) + ")");
      c.max_tokens = *hi;
    }
    for (const LengthClass& o : out) {
      if (o.name == c.name) return invalid_argument(where + "the name '" + c.name + "' is used twice");
      const bool apart = (c.max_tokens >= 0 && c.max_tokens <= o.min_tokens) ||
                         (o.max_tokens >= 0 && o.max_tokens <= c.min_tokens);
      if (!apart) return invalid_argument(where + "overlaps class '" + o.name + "'");
    }
    out.push_back(c);
  }
  return out;
}

std::vector<LengthClass> default_classes(int64_t long_threshold) {
  return {{"short", 0, long_threshold}, {"long", long_threshold, -1}};
}

std::vector<ClassStats> summarize(const SimResult& r, int64_t long_threshold) {
  return summarize(r, default_classes(long_threshold));
}

std::vector<ClassStats> summarize(const SimResult& r, const std::vector<LengthClass>& classes) {
  struct Acc {
    ClassStats s;
    std::vector<double> ttft, tbt, e2e;
    double tokens = 0, out_tokens = 0;
  };
  std::vector<Acc> acc(classes.size() + 1);
  for (size_t i = 0; i < classes.size(); ++i) acc[i].s.name = classes[i].name;
  acc.back().s.name = "all";
  for (const SimRequest& q : r.requests) {
    std::vector<Acc*> into;
    for (size_t i = 0; i < classes.size(); ++i) {
      const LengthClass& c = classes[i];
      if (q.prompt_tokens >= c.min_tokens && (c.max_tokens < 0 || q.prompt_tokens < c.max_tokens)) {
        into.push_back(&acc[i]);
        break;
      }
    }
    into.push_back(&acc.back());
    for (Acc* a : into) {
      if (q.rejected) {
        a->s.rejected += 1;
        continue;
      }
      if (q.finish_s < 0) continue;
      a->s.count += 1;
      a->ttft.push_back(q.ttft_s());
      a->e2e.push_back(q.e2e_s());
      a->tbt.insert(a->tbt.end(), q.tbt_s.begin(), q.tbt_s.end());
      a->tokens += static_cast<double>(q.prompt_tokens + q.output_tokens);
      a->out_tokens += static_cast<double>(q.output_tokens);
    }
  }
  std::vector<ClassStats> out;
  for (Acc& a : acc) {
    a.s.ttft_p50 = percentile(a.ttft, 50);
    a.s.ttft_p90 = percentile(a.ttft, 90);
    a.s.ttft_p99 = percentile(a.ttft, 99);
    a.s.tbt_p90 = percentile(a.tbt, 90);
    a.s.tbt_p50 = percentile(a.tbt, 50);
    a.s.tbt_p99 = percentile(a.tbt, 99);
    a.s.e2e_p50 = percentile(a.e2e, 50);
    if (r.duration_s > 0) {
      a.s.throughput_tok_s = a.tokens / r.duration_s;
      a.s.output_tok_s = a.out_tokens / r.duration_s;
    }
    out.push_back(a.s);
  }
  return out;
}

nlohmann::json to_json(const SimResult& r, const std::vector<ClassStats>& classes) {
  nlohmann::json j;
  j["policy"] = r.policy;
  j["duration_s"] = r.duration_s;
  j["utilisation"] = utilisation(r);
  j["replicas"] = r.num_replicas;
  j["steps"] = r.num_steps;
  j["preemptions"] = r.num_preemptions;
  for (const ClassStats& c : classes)
    j["classes"][c.name] = {{"count", c.count},
                            {"rejected", c.rejected},
                            {"ttft_p50", c.ttft_p50},
                            {"ttft_p90", c.ttft_p90},
                            {"ttft_p99", c.ttft_p99},
                            {"tbt_p90", c.tbt_p90},
                            {"tbt_p50", c.tbt_p50},
                            {"tbt_p99", c.tbt_p99},
                            {"e2e_p50", c.e2e_p50},
                            {"throughput_tok_s", c.throughput_tok_s},
                            {"output_tok_s", c.output_tok_s}};
  return j;
}

nlohmann::json requests_json(const SimResult& r) {
  nlohmann::json out = nlohmann::json::array();
  for (const SimRequest& q : r.requests) {
    nlohmann::json j = {{"index", q.index},       {"arrival_s", q.arrival_s},
                        {"prompt_tokens", q.prompt_tokens}, {"output_tokens", q.output_tokens},
                        {"rejected", q.rejected}, {"pool", q.pool},
                        {"replica", q.replica},   {"preemptions", q.num_preemptions}};
    if (q.first_token_s >= 0) j["ttft_s"] = q.ttft_s();
    if (q.finish_s >= 0) j["e2e_s"] = q.e2e_s();
    j["tbt_s"] = q.tbt_s;
    out.push_back(std::move(j));
  }
  return out;
}

std::string format_table(const SimResult& r, const std::vector<ClassStats>& classes) {
  std::string s;
  char line[256];
  std::snprintf(
      line, sizeof line, "policy %s: %.3f s simulated, %lld steps, utilisation %.1f%%, %lld preemptions\n",
      r.policy.c_str(), r.duration_s, static_cast<long long>(r.num_steps),
      100.0 * utilisation(r), static_cast<long long>(r.num_preemptions));
  s += line;
  std::snprintf(line, sizeof line, "%-6s %6s %5s %10s %10s %9s %9s %10s %12s\n", "class", "count", "rej",
                "ttft_p50", "ttft_p99", "tbt_p50", "tbt_p99", "e2e_p50", "tok/s");
  s += line;
  for (const ClassStats& c : classes) {
    std::snprintf(line, sizeof line, "%-6s %6lld %5lld %10.4f %10.4f %9.4f %9.4f %10.3f %12.1f\n",
                  c.name.c_str(), static_cast<long long>(c.count), static_cast<long long>(c.rejected),
                  c.ttft_p50, c.ttft_p99, c.tbt_p50, c.tbt_p99, c.e2e_p50, c.throughput_tok_s);
    s += line;
  }
  return s;
}

}  // namespace longctx
