// The `pre_tokenizer` section of tokenizer.json: splits text into the words BPE runs on.
// Supports Split (Regex or String pattern, every SplitDelimiterBehavior, invert),
// ByteLevel (add_prefix_space, use_regex) and Sequence. Regexes run on PCRE2 (UTF + UCP,
// JIT), with Oniguruma's find_iter semantics, which HF tokenizers uses.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace longctx {

class PreTokenizer {
 public:
  // `spec` is the JSON value of the section (null means none); `where` names it in errors.
  static Result<PreTokenizer> from_json(const nlohmann::json& spec, const std::string& where);
  PreTokenizer();
  PreTokenizer(PreTokenizer&&) noexcept;
  PreTokenizer& operator=(PreTokenizer&&) noexcept;
  ~PreTokenizer();

  // Per-call working memory (regex match data, buffers); one per thread at a time.
  class Scratch;
  struct ScratchDeleter {
    void operator()(Scratch* s) const;
  };
  using ScratchPtr = std::unique_ptr<Scratch, ScratchDeleter>;
  ScratchPtr make_scratch() const;

  class WordSink {
   public:
    virtual void word(std::string_view w) = 0;

   protected:
    ~WordSink() = default;
  };
  // Calls sink.word() for each word of text (well-formed UTF-8), in order. Fails only
  // when the regex engine does (e.g. its stack limit).
  Status split(std::string_view text, Scratch& scratch, WordSink& sink) const;

 private:
  struct Step;
  Status add(const nlohmann::json& spec, const std::string& where);
  Status run(size_t step, std::string_view piece, Scratch& scratch, WordSink& sink) const;
  std::vector<Step> steps_;
};

}  // namespace longctx
