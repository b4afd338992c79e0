#include "text/tokenizer_pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <nlohmann/json.hpp>

#include "text/byte_level.h"
#include "text/tokenizer_utf8.h"

namespace longctx {

using Span = std::pair<size_t, size_t>;

class PreTokenizer::Scratch {
 public:
  Scratch() {
    match_data = pcre2_match_data_create(1, nullptr);
    match_context = pcre2_match_context_create(nullptr);
    // The default 32 KiB JIT stack can run out on long runs of one character class;
    // 8 MiB is ample for these patterns and is only reserved, not touched, up front.
    jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    pcre2_jit_stack_assign(match_context, nullptr, jit_stack);
  }
  ~Scratch() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(match_context);
    pcre2_match_data_free(match_data);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  pcre2_match_data* match_data;
  pcre2_match_context* match_context;
  pcre2_jit_stack* jit_stack;
  // Per step depth: match spans, kept pieces and the byte-level mapped word.
  std::vector<std::vector<Span>> matches;
  std::vector<std::vector<Span>> pieces;
  std::vector<std::string> buffers;
};

class TokenizerRegex {
 public:
  static Result<std::unique_ptr<TokenizerRegex>> compile(std::string_view pattern, const std::string& where) {
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     PCRE2_UTF | PCRE2_UCP, &error, &error_offset, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(error, msg, sizeof(msg));
      return invalid_argument(where + ": regex does not compile at offset " + std::to_string(error_offset) +
                              ": " + reinterpret_cast<const char*>(msg));
    }
    // JIT makes matching several times faster; without it pcre2_match interprets.
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    auto re = std::unique_ptr<TokenizerRegex>(new TokenizerRegex());
    re->code_ = code;
    return re;
  }
  ~TokenizerRegex() { pcre2_code_free(code_); }

  // Appends [start, end) of each match in subject, leftmost first and non-overlapping; an
  // empty match right where the previous match ended is skipped, as Oniguruma's find_iter
  // (which HF uses) does.
  Status find_all(std::string_view subject, PreTokenizer::Scratch& scratch, std::vector<Span>& out) const {
    const auto* s = reinterpret_cast<PCRE2_SPTR>(subject.data());
    size_t from = 0;
    size_t last_end = std::string_view::npos;
    while (from <= subject.size()) {
      // The text was validated once up front; re-checking UTF-8 per call would be quadratic.
      const int rc = pcre2_match(code_, s, subject.size(), from, PCRE2_NO_UTF_CHECK, scratch.match_data,
                                 scratch.match_context);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof(msg));
        return internal_error(std::string("pre-tokenizer regex failed: ") +
                              reinterpret_cast<const char*>(msg));
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(scratch.match_data);
      const size_t start = ov[0], end = ov[1];
      if (start == end && end == last_end) {
        if (from >= subject.size()) break;
        from += utf8::char_length(static_cast<unsigned char>(subject[from]));
        continue;
      }
      out.emplace_back(start, end);
      last_end = end;
      from = end;
    }
    return Status::ok();
  }

 private:
  TokenizerRegex() = default;
  pcre2_code* code_ = nullptr;
};

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct PreTokenizer::Step {
  enum class Kind { kSplit, kByteLevel } kind = Kind::kSplit;
  // Split
  std::unique_ptr<TokenizerRegex> regex;  // a Regex pattern, or null for a String one
  std::string literal;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  // ByteLevel
  bool add_prefix_space = false;
  bool use_regex = false;
};

namespace {

// Turns the matches of a pattern in a piece of length n into the kept sub-pieces, as HF's
// NormalizedString::split does for each SplitDelimiterBehavior. Empty pieces are dropped.
void apply_behavior(const std::vector<Span>& matches, size_t n, SplitBehavior behavior, bool invert,
                    std::vector<Span>& out) {
  struct Part {
    size_t start, end;
    bool is_match;
  };
  std::vector<Part> parts;
  parts.reserve(matches.size() * 2 + 1);
  size_t prev = 0;
  for (const auto& [s, e] : matches) {
    if (prev != s) parts.push_back({prev, s, false});
    parts.push_back({s, e, true});
    prev = e;
  }
  if (prev != n || n == 0) parts.push_back({prev, n, false});
  if (invert)
    for (Part& p : parts) p.is_match = !p.is_match;

  out.clear();
  auto keep = [&](size_t s, size_t e) { out.emplace_back(s, e); };
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Part& p : parts) keep(p.start, p.end);
      break;
    case SplitBehavior::kRemoved:
      for (const Part& p : parts)
        if (!p.is_match) keep(p.start, p.end);
      break;
    case SplitBehavior::kContiguous: {
      bool previous_match = false;
      for (const Part& p : parts) {
        if (p.is_match == previous_match && !out.empty()) {
          out.back().second = p.end;
        } else {
          keep(p.start, p.end);
        }
        previous_match = p.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const Part& p : parts) {
        if (p.is_match && !previous_match && !out.empty()) {
          out.back().second = p.end;
        } else {
          keep(p.start, p.end);
        }
        previous_match = p.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous_match = false;
      for (size_t i = parts.size(); i-- > 0;) {
        const Part& p = parts[i];
        if (p.is_match && !previous_match && !out.empty()) {
          out.back().first = p.start;
        } else {
          keep(p.start, p.end);
        }
        previous_match = p.is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
    }
  }
  std::erase_if(out, [](const Span& s) { return s.first == s.second; });
}

Result<SplitBehavior> parse_behavior(const nlohmann::json& v, const std::string& where) {
  if (!v.is_string()) return invalid_argument(where + ": expected a string");
  const std::string b = v.get<std::string>();
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  return invalid_argument(where + ": unknown split behavior '" + b +
                          "' (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous)");
}

Result<bool> get_bool(const nlohmann::json& obj, const char* key, bool fallback, const std::string& where) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) return invalid_argument(where + "." + key + ": expected true or false");
  return it->get<bool>();
}

}  // namespace

PreTokenizer::PreTokenizer() = default;
PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;
PreTokenizer& PreTokenizer::operator=(PreTokenizer&&) noexcept = default;
PreTokenizer::~PreTokenizer() = default;

Result<PreTokenizer> PreTokenizer::from_json(const nlohmann::json& spec, const std::string& where) {
  PreTokenizer p;
  if (!spec.is_null()) LONGCTX_RETURN_IF_ERROR(p.add(spec, where));
  return p;
}

Status PreTokenizer::add(const nlohmann::json& spec, const std::string& where) {
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string())
    return invalid_argument(where + ": expected an object with a string \"type\"");
  const std::string type = spec["type"].get<std::string>();
  if (type == "Sequence") {
    const auto it = spec.find("pretokenizers");
    if (it == spec.end() || !it->is_array())
      return invalid_argument(where + ".pretokenizers: expected an array");
    for (size_t i = 0; i < it->size(); ++i)
      LONGCTX_RETURN_IF_ERROR(add((*it)[i], where + ".pretokenizers[" + std::to_string(i) + "]"));
    return Status::ok();
  }
  Step step;
  if (type == "Split") {
    step.kind = Step::Kind::kSplit;
    const auto pat = spec.find("pattern");
    if (pat == spec.end() || !pat->is_object())
      return invalid_argument(where + ".pattern: expected {\"Regex\": ...} or {\"String\": ...}");
    if (pat->contains("Regex") && (*pat)["Regex"].is_string()) {
      LONGCTX_ASSIGN_OR_RETURN(
          step.regex, TokenizerRegex::compile((*pat)["Regex"].get<std::string>(), where + ".pattern.Regex"));
    } else if (pat->contains("String") && (*pat)["String"].is_string()) {
      step.literal = (*pat)["String"].get<std::string>();
      if (step.literal.empty()) return invalid_argument(where + ".pattern.String: must not be empty");
    } else {
      return invalid_argument(where + ".pattern: expected {\"Regex\": \"...\"} or {\"String\": \"...\"}");
    }
    if (!spec.contains("behavior")) return invalid_argument(where + ".behavior: missing");
    LONGCTX_ASSIGN_OR_RETURN(step.behavior, parse_behavior(spec["behavior"], where + ".behavior"));
    LONGCTX_ASSIGN_OR_RETURN(step.invert, get_bool(spec, "invert", false, where));
  } else if (type == "ByteLevel") {
    step.kind = Step::Kind::kByteLevel;
    LONGCTX_ASSIGN_OR_RETURN(step.add_prefix_space, get_bool(spec, "add_prefix_space", true, where));
    LONGCTX_ASSIGN_OR_RETURN(step.use_regex, get_bool(spec, "use_regex", true, where));
    if (step.use_regex) {
      LONGCTX_ASSIGN_OR_RETURN(step.regex, TokenizerRegex::compile(byte_level::kGpt2SplitRegex, where));
    }
  } else {
    return unimplemented(where + ": pre_tokenizer type '" + type +
                         "' is not supported (supported: Split, ByteLevel, Sequence)");
  }
  steps_.push_back(std::move(step));
  return Status::ok();
}

void PreTokenizer::ScratchDeleter::operator()(Scratch* s) const { delete s; }

PreTokenizer::ScratchPtr PreTokenizer::make_scratch() const {
  ScratchPtr s(new Scratch());
  s->matches.resize(steps_.size());
  s->pieces.resize(steps_.size());
  s->buffers.resize(steps_.size());
  return s;
}

Status PreTokenizer::split(std::string_view text, Scratch& scratch, WordSink& sink) const {
  if (text.empty()) return Status::ok();
  return run(0, text, scratch, sink);
}

Status PreTokenizer::run(size_t index, std::string_view piece, Scratch& scratch, WordSink& sink) const {
  if (index == steps_.size()) {
    sink.word(piece);
    return Status::ok();
  }
  const Step& step = steps_[index];
  std::vector<Span>& matches = scratch.matches[index];
  std::vector<Span>& pieces = scratch.pieces[index];
  matches.clear();
  if (step.kind == Step::Kind::kSplit) {
    if (step.regex) {
      LONGCTX_RETURN_IF_ERROR(step.regex->find_all(piece, scratch, matches));
    } else {
      for (size_t at = piece.find(step.literal); at != std::string_view::npos;
           at = piece.find(step.literal, at + step.literal.size()))
        matches.emplace_back(at, at + step.literal.size());
    }
    apply_behavior(matches, piece.size(), step.behavior, step.invert, pieces);
    // The deeper steps reuse scratch vectors of their own depth only, so `pieces` stays intact.
    for (const auto& [s, e] : pieces)
      LONGCTX_RETURN_IF_ERROR(run(index + 1, piece.substr(s, e - s), scratch, sink));
    return Status::ok();
  }

  // ByteLevel: optionally prefix a space, optionally split with the GPT-2 regex, then map
  // each piece's bytes to the byte-level alphabet.
  std::string prefixed;
  std::string_view text = piece;
  if (step.add_prefix_space && piece.front() != ' ') {
    prefixed = " ";
    prefixed += piece;
    text = prefixed;
  }
  if (step.use_regex) {
    LONGCTX_RETURN_IF_ERROR(step.regex->find_all(text, scratch, matches));
    apply_behavior(matches, text.size(), SplitBehavior::kIsolated, false, pieces);
  } else {
    pieces.assign(1, Span{0, text.size()});
  }
  std::string& mapped = scratch.buffers[index];
  for (const auto& [s, e] : pieces) {
    mapped.clear();
    byte_level::append_encoded(text.substr(s, e - s), mapped);
    LONGCTX_RETURN_IF_ERROR(run(index + 1, mapped, scratch, sink));
  }
  return Status::ok();
}

}  // namespace longctx
