#include "sim/trace.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

namespace longctx {
namespace {

Result<int64_t> parse_tokens(const std::string& s, const std::string& where) {
  if (s.empty()) return invalid_argument(where + ": empty length");
  int64_t mult = 1;
  std::string digits = s;
  const char last = static_cast<char>(std::tolower(static_cast<unsigned char>(s.back())));
  if (last == 'k') mult = 1024;
  if (last == 'm') mult = 1024 * 1024;
  if (mult != 1) digits.pop_back();
  try {
    size_t used = 0;
    const double v = std::stod(digits, &used);
    if (used != digits.size() || !(v > 0)) throw std::invalid_argument("");
    return static_cast<int64_t>(std::llround(v * static_cast<double>(mult)));
  } catch (const std::exception&) {
    return invalid_argument(where + ": '" + s + "' is not a positive length (e.g. 512, 8k, 1m)");
  }
}

struct Range {
  int64_t lo = 0, hi = 0;
};

Result<Range> parse_range(const std::string& s, const std::string& where) {
  const auto dash = s.find('-');
  auto lo = parse_tokens(s.substr(0, dash), where);
  if (!lo.is_ok()) return lo.status();
  if (dash == std::string::npos) return Range{*lo, *lo};
  auto hi = parse_tokens(s.substr(dash + 1), where);
  if (!hi.is_ok()) return hi.status();
  if (*hi < *lo) return invalid_argument(where + ": range '" + s + "' has hi < lo");
  return Range{*lo, *hi};
}

struct Component {
  double weight = 0;
  Range len;
};

}  // namespace

Result<std::vector<TraceRequest>> load_trace(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) return not_found("cannot open trace " + file.string());
  std::vector<TraceRequest> out;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = file.string() + ":" + std::to_string(n);
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return invalid_argument(where + ": not a JSON object");
    TraceRequest r;
    for (const char* key : {"arrival_s", "prompt_tokens", "output_tokens"})
      if (!j.contains(key) || !j[key].is_number())
        return invalid_argument(where + ": field \"" + key + "\" is missing or not a number");
    r.arrival_s = j["arrival_s"].get<double>();
    r.prompt_tokens = j["prompt_tokens"].get<int64_t>();
    r.output_tokens = j["output_tokens"].get<int64_t>();
    if (!(r.arrival_s >= 0) || r.prompt_tokens < 1 || r.output_tokens < 1)
      return invalid_argument(where + ": need arrival_s >= 0, prompt_tokens >= 1 and output_tokens >= 1");
    out.push_back(r);
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const TraceRequest& a, const TraceRequest& b) { return a.arrival_s < b.arrival_s; });
  return out;
}

Status write_trace(const std::filesystem::path& file, const std::vector<TraceRequest>& trace) {
  std::ofstream out(file);
  if (!out) return not_found("cannot write trace " + file.string());
  for (const TraceRequest& r : trace)
    out << nlohmann::json{{"arrival_s", r.arrival_s},
                          {"prompt_tokens", r.prompt_tokens},
                          {"output_tokens", r.output_tokens}}
               .dump()
        << "\n";
  return out ? Status::ok() : data_loss("writing " + file.string() + " failed");
}

Result<std::vector<TraceRequest>> generate_workload(const std::string& spec) {
  const std::string where = "--workload " + spec;
  if (spec.rfind("mix:", 0) != 0) return invalid_argument(where + ": must start with 'mix:'");
  int64_t n = 100;
  double rate = 1.0;
  uint64_t seed = 1;
  Range out_len{128, 128};
  std::vector<Component> mix = {{1.0, {1024, 8192}}};
  std::stringstream ss(spec.substr(4));
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) return invalid_argument(where + ": '" + item + "' is not key=value");
    const std::string key = item.substr(0, eq), val = item.substr(eq + 1);
    try {
      if (key == "n") {
        n = std::stoll(val);
      } else if (key == "rate") {
        rate = std::stod(val);
      } else if (key == "seed") {
        seed = std::stoull(val);
      } else if (key == "out") {
        auto r = parse_range(val, where);
        if (!r.is_ok()) return r.status();
        out_len = *r;
      } else if (key == "prompts") {
        mix.clear();
        std::stringstream cs(val);
        std::string comp;
        while (std::getline(cs, comp, '+')) {
          const auto at = comp.find('@');
          if (at == std::string::npos)
            return invalid_argument(where + ": '" + comp + "' is not weight@lo-hi");
          auto r = parse_range(comp.substr(at + 1), where);
          if (!r.is_ok()) return r.status();
          mix.push_back({std::stod(comp.substr(0, at)), *r});
        }
      } else {
        return invalid_argument(where + ": unknown key '" + key + "' (n, rate, prompts, out, seed)");
      }
    } catch (const std::exception&) {
      return invalid_argument(where + ": bad value in '" + item + "'");
    }
  }
  double total_w = 0;
  for (const auto& c : mix) {
    if (!(c.weight > 0)) return invalid_argument(where + ": mix weights must be > 0");
    total_w += c.weight;
  }
  if (n < 1 || !(rate > 0) || mix.empty()) return invalid_argument(where + ": need n >= 1, rate > 0, a mix");

  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(rate);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  auto log_uniform = [&](Range r) {
    if (r.lo == r.hi) return r.lo;
    const double x =
        std::exp(std::log(double(r.lo)) + u01(rng) * (std::log(double(r.hi)) - std::log(double(r.lo))));
    return std::clamp<int64_t>(std::llround(x), r.lo, r.hi);
  };
  std::vector<TraceRequest> trace;
  double t = 0;
  for (int64_t i = 0; i < n; ++i) {
    t += gap(rng);
    double pick = u01(rng) * total_w;
    const Component* c = &mix.back();
    for (const auto& m : mix) {
      if (pick < m.weight) {
        c = &m;
        break;
      }
      pick -= m.weight;
    }
    TraceRequest r;
    r.arrival_s = t;
    r.prompt_tokens = log_uniform(c->len);
    r.output_tokens =
        out_len.lo + static_cast<int64_t>(u01(rng) * static_cast<double>(out_len.hi - out_len.lo + 1));
    r.output_tokens = std::min(r.output_tokens, out_len.hi);
    trace.push_back(r);
  }
  return trace;
}

}  // namespace longctx
