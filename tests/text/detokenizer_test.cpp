// IncrementalDetokenizer: streamed text never splits a UTF-8 character, and the whole
// stream equals Tokenizer::decode of the same ids.
#include <gtest/gtest.h>

#include <map>

#include "text/tokenizer.h"
#include "text/tokenizer_utf8.h"

namespace longctx {
namespace {

const Tokenizer& real_tokenizer(const std::string& name) {
  static auto* cache = new std::map<std::string, Tokenizer>();
  auto it = cache->find(name);
  if (it == cache->end()) {
    Result<Tokenizer> t = Tokenizer::load(std::string(LONGCTX_TOKENIZERS_DIR) + "/" + name);
    if (!t.is_ok()) throw StatusError(t.status());
    it = cache->emplace(name, std::move(t).value()).first;
  }
  return it->second;
}

// The id of the token that stands for exactly one byte b.
int32_t byte_token(const Tokenizer& tok, unsigned char b) {
  for (int32_t id = 0; id < tok.vocab_size(); ++id)
    if (tok.token_bytes(id) == std::string(1, static_cast<char>(b))) return id;
  ADD_FAILURE() << "no token for byte " << int(b);
  return 0;
}

std::string stream(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip_special,
                   size_t* empty_pushes = nullptr) {
  IncrementalDetokenizer detok(tok, skip_special);
  std::string all;
  for (const int32_t id : ids) {
    const std::string piece = detok.push(id);
    EXPECT_FALSE(utf8::find_invalid(piece).has_value()) << "push(" << id << ") gave a partial character";
    if (piece.empty() && empty_pushes != nullptr) ++*empty_pushes;
    all += piece;
  }
  const std::string rest = detok.finish();
  EXPECT_FALSE(utf8::find_invalid(rest).has_value());
  return all + rest;
}

class DetokenizerTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    for (const char* name : {"qwen3", "llama3_1", "deepseek_v3"}) real_tokenizer(name);
  }
};

TEST_P(DetokenizerTest, StreamsMultiByteTextWithoutSplittingCharacters) {
  const Tokenizer& tok = real_tokenizer(GetParam());
  const std::string text =
      "Emoji 🤖🚀👩‍👩‍👧 and CJK 中文测试：长上下文推理。日本語のテキスト, ĳ Ünïcödé 𝔘𝔫𝔦 "
      "— "
      "done.";
  const std::vector<int32_t> ids = tok.encode(text).value();
  // Some token of this text must be an incomplete character on its own, or the test
  // would not exercise holding bytes back.
  bool has_partial = false;
  for (const int32_t id : ids) has_partial |= utf8::find_invalid(tok.token_bytes(id)).has_value();
  EXPECT_TRUE(has_partial);
  size_t empty_pushes = 0;
  EXPECT_EQ(stream(tok, ids, true, &empty_pushes), text);
  EXPECT_GT(empty_pushes, 0u);
  EXPECT_EQ(stream(tok, ids, true), tok.decode(ids).value());
}

TEST_P(DetokenizerTest, SpecialTokensAreSkippedOrKept) {
  const Tokenizer& tok = real_tokenizer(GetParam());
  std::vector<int32_t> ids = tok.encode("héllo 世界").value();
  const int32_t eos = tok.eos_token_id().value();
  ids.insert(ids.begin() + 1, eos);
  ids.push_back(eos);
  EXPECT_EQ(stream(tok, ids, /*skip_special=*/true), tok.decode(ids, true).value());
  EXPECT_EQ(stream(tok, ids, /*skip_special=*/false), tok.decode(ids, false).value());
  EXPECT_NE(tok.decode(ids, false).value(), tok.decode(ids, true).value());
}

TEST_P(DetokenizerTest, IllFormedBytesBecomeReplacementCharactersAsInDecode) {
  const Tokenizer& tok = real_tokenizer(GetParam());
  const int32_t e4 = byte_token(tok, 0xE4), b8 = byte_token(tok, 0xB8), ad = byte_token(tok, 0xAD);
  const int32_t cont = byte_token(tok, 0x80), a = tok.token_to_id("a").value();
  const std::string fffd = "\xEF\xBF\xBD";
  const std::vector<std::pair<std::vector<int32_t>, std::string>> cases = {
      {{e4, b8, ad}, "中"},             // whole character across three tokens
      {{e4, b8, a}, fffd + "a"},        // broken by an ASCII byte: one U+FFFD
      {{cont, a}, fffd + "a"},          // stray continuation byte
      {{a, e4, b8}, "a" + fffd},        // unfinished at the end: flushed by finish()
      {{e4, e4, b8, ad}, fffd + "中"},  // a new lead byte ends the unfinished one
  };
  for (const auto& [ids, want] : cases) {
    EXPECT_EQ(tok.decode(ids).value(), want);
    EXPECT_EQ(stream(tok, ids, true), want);
  }
  IncrementalDetokenizer detok(tok);
  EXPECT_EQ(detok.push(e4), "");
  EXPECT_EQ(detok.push(b8), "");
  EXPECT_EQ(detok.push(ad), "中");
  EXPECT_EQ(detok.push(e4), "");
  EXPECT_EQ(detok.finish(), fffd);
  EXPECT_EQ(detok.finish(), "");
}

TEST_P(DetokenizerTest, IdsWithoutATokenAreIgnored) {
  const Tokenizer& tok = real_tokenizer(GetParam());
  IncrementalDetokenizer detok(tok);
  EXPECT_EQ(detok.push(static_cast<int32_t>(tok.vocab_size()) + 7), "");
  EXPECT_EQ(detok.push(-1), "");
  EXPECT_EQ(detok.push(tok.token_to_id("a").value()), "a");
}

INSTANTIATE_TEST_SUITE_P(Detokenizer, DetokenizerTest, ::testing::Values("qwen3", "llama3_1", "deepseek_v3"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

}  // namespace
}  // namespace longctx
