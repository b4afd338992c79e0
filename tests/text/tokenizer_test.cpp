// Tokenizer against Hugging Face tokenizers goldens (tests/data/tokenizer_golden.json)
// for the real Qwen3, Llama 3.1 and DeepSeek-V3 tokenizer.json files, plus the generic
// pieces (split behaviors, added-token flags, NFC) on small synthetic tokenizers.
#include "text/tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "text/tokenizer_normalizer.h"
#include "text/tokenizer_utf8.h"

namespace longctx {
namespace {

using json = nlohmann::json;

const Tokenizer& real_tokenizer(const std::string& name) {
  // Loaded once per test binary; every test shares the same immutable tokenizers.
  static auto* cache = new std::map<std::string, Tokenizer>();
  auto it = cache->find(name);
  if (it == cache->end()) {
    Result<Tokenizer> t = Tokenizer::load(std::string(LONGCTX_TOKENIZERS_DIR) + "/" + name);
    if (!t.is_ok()) throw StatusError(t.status());
    it = cache->emplace(name, std::move(t).value()).first;
  }
  return it->second;
}

const json& goldens() {
  static const json g = [] {
    std::ifstream in(std::string(LONGCTX_TEST_DATA_DIR) + "/tokenizer_golden.json");
    return json::parse(in);
  }();
  return g;
}

std::vector<int32_t> ids_of(const Tokenizer& tok, std::string_view text, bool add_special = false) {
  Result<std::vector<int32_t>> r = tok.encode(text, add_special);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? r.value() : std::vector<int32_t>{};
}

std::string decoded(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip_special = false) {
  Result<std::string> r = tok.decode(ids, skip_special);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? r.value() : std::string();
}

// ---------------------------------------------------------------- real tokenizers

class TokenizerGoldenTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    for (const char* name : {"qwen3", "llama3_1", "deepseek_v3"}) real_tokenizer(name);
  }
};

TEST_P(TokenizerGoldenTest, EncodesAndDecodesEveryCaseLikeHf) {
  const Tokenizer& tok = real_tokenizer(GetParam());
  const json& cases = goldens().at(GetParam()).at("cases");
  ASSERT_GE(cases.size(), 10u);
  for (const json& c : cases) {
    const std::string text = c.at("text").get<std::string>();
    const std::vector<int32_t> want = c.at("ids").get<std::vector<int32_t>>();
    EXPECT_EQ(ids_of(tok, text), want) << "text: " << text;
    EXPECT_EQ(decoded(tok, want), c.at("decoded").get<std::string>()) << "text: " << text;
  }
}

TEST_P(TokenizerGoldenTest, LongMixedTextRoundTrips) {
  const Tokenizer& tok = real_tokenizer(GetParam());
  const std::string unit =
      "The quick brown fox jumps over 1234567 lazy dogs.\n\tdef f(x): return x**2  # ok\r\n"
      "中文测试：长上下文推理。日本語のテキスト 🤖🚀 Ünïcödé — “quotes” don't  "
      " "
      "\n\n"
      "<|im_start|>user\nhi<|im_end|> https://example.com/path?q=1&r=2#frag Ωmega ∑ ∫ √\n";
  std::string text;
  while (text.size() < 200 * 1024) text += unit;
  text += std::string(5000, 'a') + " " + std::string(3000, ' ') + "z";
  const std::vector<int32_t> ids = ids_of(tok, text);
  EXPECT_GT(ids.size(), text.size() / 8);
  EXPECT_EQ(decoded(tok, ids), text);
  // Encoding a text in one piece or unit by unit agrees where the units are whole words.
  const std::vector<int32_t> unit_ids = ids_of(tok, unit);
  ASSERT_GE(ids.size(), unit_ids.size());
  EXPECT_TRUE(std::equal(unit_ids.begin(), unit_ids.end() - 1, ids.begin()));
}

TEST_P(TokenizerGoldenTest, SpecialTokenFlagsAndSkipping) {
  const Tokenizer& tok = real_tokenizer(GetParam());
  const std::optional<int32_t> eos = tok.eos_token_id();
  ASSERT_TRUE(eos.has_value()) << tok.eos_token();
  EXPECT_TRUE(tok.is_special(*eos));
  EXPECT_EQ(decoded(tok, {*eos}), tok.eos_token());
  std::vector<int32_t> ids = ids_of(tok, "hi there");
  const std::string plain = decoded(tok, ids);
  ids.push_back(*eos);
  EXPECT_EQ(decoded(tok, ids, /*skip_special=*/true), plain);
  EXPECT_EQ(decoded(tok, ids, /*skip_special=*/false), plain + tok.eos_token());
  EXPECT_FALSE(tok.is_special(ids[0]));
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, TokenizerGoldenTest,
                         ::testing::Values("qwen3", "llama3_1", "deepseek_v3"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

TEST(TokenizerQwen3, SpecialTokensInTextAreSingleIds) {
  const Tokenizer& tok = real_tokenizer("qwen3");
  EXPECT_EQ(ids_of(tok, "<|im_start|>"), std::vector<int32_t>{151644});
  EXPECT_EQ(ids_of(tok, "<|im_end|>"), std::vector<int32_t>{151645});
  EXPECT_EQ(ids_of(tok, "<|endoftext|>"), std::vector<int32_t>{151643});
  const std::vector<int32_t> ids = ids_of(tok, "a<|im_end|>b");
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[1], 151645);
  // Non-special added tokens are matched too (<think> is added with special=false).
  const std::optional<int32_t> think = tok.token_to_id("<think>");
  ASSERT_TRUE(think.has_value());
  EXPECT_FALSE(tok.is_special(*think));
  EXPECT_EQ(ids_of(tok, "<think>"), std::vector<int32_t>{*think});
  // Qwen3 adds nothing with add_special_tokens (no template, add_bos_token false).
  EXPECT_EQ(ids_of(tok, "hello", true), ids_of(tok, "hello"));
  EXPECT_FALSE(tok.bos_token_id().has_value());
  EXPECT_EQ(tok.bos_token(), "");
  EXPECT_EQ(tok.eos_token(), "<|im_end|>");
  EXPECT_EQ(tok.vocab_size(), 151669);
}

TEST(TokenizerQwen3, NormalizesToNfcBeforeBpe) {
  const Tokenizer& tok = real_tokenizer("qwen3");
  // "é" decomposed (e + U+0301) is composed by the NFC normalizer first.
  EXPECT_EQ(ids_of(tok,
                   "caf"
                   "e\xCC\x81"),
            ids_of(tok, "caf\xC3\xA9"));
  EXPECT_EQ(decoded(tok, ids_of(tok,
                                "caf"
                                "e\xCC\x81")),
            "caf\xC3\xA9");
}

TEST(TokenizerLlama31, BosFromTemplateAndSpecialTokens) {
  const Tokenizer& tok = real_tokenizer("llama3_1");
  EXPECT_EQ(ids_of(tok, "<|begin_of_text|>"), std::vector<int32_t>{128000});
  EXPECT_EQ(ids_of(tok, "<|eot_id|>"), std::vector<int32_t>{128009});
  const std::vector<int32_t> plain = ids_of(tok, "Hello, world!");
  std::vector<int32_t> with_bos = {128000};
  with_bos.insert(with_bos.end(), plain.begin(), plain.end());
  EXPECT_EQ(ids_of(tok, "Hello, world!", true), with_bos);
  EXPECT_EQ(ids_of(tok, "", true), std::vector<int32_t>{128000});
  EXPECT_EQ(tok.bos_token_id(), 128000);
  EXPECT_EQ(tok.eos_token_id(), 128009);
  EXPECT_EQ(tok.bos_token(), "<|begin_of_text|>");
  EXPECT_EQ(tok.vocab_size(), 128256);
  EXPECT_EQ(tok.token_to_id("Hello"), 9906);
  EXPECT_EQ(tok.token_bytes(9906), "Hello");
}

TEST(TokenizerDeepseekV3, ConfigTokensAndAddBos) {
  const Tokenizer& tok = real_tokenizer("deepseek_v3");
  // bos_token/eos_token are {"content": ...} objects in its tokenizer_config.json.
  EXPECT_EQ(tok.bos_token(), "<｜begin▁of▁sentence｜>");
  EXPECT_EQ(tok.bos_token_id(), 0);
  EXPECT_EQ(tok.eos_token_id(), 1);
  EXPECT_EQ(ids_of(tok, "<｜begin▁of▁sentence｜>"), std::vector<int32_t>{0});
  EXPECT_EQ(tok.token_bytes(0), "<｜begin▁of▁sentence｜>");
  // No template in tokenizer.json, add_bos_token true in the config: BOS is prepended.
  const std::vector<int32_t> plain = ids_of(tok, "hi");
  std::vector<int32_t> with_bos = {0};
  with_bos.insert(with_bos.end(), plain.begin(), plain.end());
  EXPECT_EQ(ids_of(tok, "hi", true), with_bos);
  // A normalized, non-special added token.
  const std::vector<int32_t> user = ids_of(tok, "x<｜User｜>y");
  ASSERT_EQ(user.size(), 3u);
  EXPECT_EQ(user[1], 128803);
  EXPECT_FALSE(tok.is_special(128803));
  EXPECT_EQ(tok.vocab_size(), 128815);
}

TEST(TokenizerErrors, InvalidUtf8IsAnErrorNamingTheOffset) {
  const Tokenizer& tok = real_tokenizer("qwen3");
  for (const auto& [text, offset] : std::vector<std::pair<std::string, size_t>>{
           {"ab\xFF", 2}, {"\xE4\xB8", 0}, {"ok \xC0\xAF", 3}, {"x\xED\xA0\x80", 1}, {"\x80", 0}}) {
    Result<std::vector<int32_t>> r = tok.encode(text);
    ASSERT_FALSE(r.is_ok()) << text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("byte offset " + std::to_string(offset)), std::string::npos)
        << r.status().message();
  }
}

TEST(TokenizerErrors, DecodeRejectsIdsOutsideTheVocabulary) {
  const Tokenizer& tok = real_tokenizer("llama3_1");
  for (const int32_t bad : {int32_t(tok.vocab_size()), int32_t(tok.vocab_size() + 100), -1}) {
    const std::vector<int32_t> ids = {9906, bad};
    Result<std::string> r = tok.decode(ids);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(std::to_string(bad)), std::string::npos) << r.status().message();
  }
  EXPECT_EQ(tok.token_bytes(int32_t(tok.vocab_size())), "");
}

// ---------------------------------------------------------------- synthetic tokenizers

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("longctx_tok_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
             std::to_string(counter()++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }
  void write(const std::string& name, const std::string& content) const {
    std::ofstream(path_ / name, std::ios::binary) << content;
  }

 private:
  static int& counter() {
    static int c = 0;
    return c;
  }
  std::filesystem::path path_;
};

// A minimal byte-level BPE tokenizer.json: single characters plus the given merges.
json tiny_spec(const json& pre_tokenizer, const json& merges,
               const std::vector<std::string>& extra_tokens = {}) {
  json vocab = json::object();
  int id = 0;
  for (const char* t : {"a", "b", "-", "Ġ", "x"}) vocab[t] = id++;
  for (const std::string& t : extra_tokens) vocab[t] = id++;
  return json{
      {"version", "1.0"},
      {"added_tokens", json::array()},
      {"normalizer", nullptr},
      {"pre_tokenizer", pre_tokenizer},
      {"post_processor", nullptr},
      {"decoder",
       {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"vocab", vocab},
        {"merges", merges}}}};
}

Result<Tokenizer> load_spec(const TempDir& dir, const json& spec) {
  dir.write("tokenizer.json", spec.dump());
  return Tokenizer::load(dir.path());
}

json split_dash(const char* behavior, bool invert) {
  return {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", invert}};
}

TEST(TokenizerSynthetic, SplitBehaviorsMatchHf) {
  // a=0 b=1 -=2 Ġ=3 x=4 a-=5 -b=6 --=7; the merges show which pieces stayed together.
  const json merges =
      json::array({json::array({"a", "-"}), json::array({"-", "b"}), json::array({"-", "-"})});
  const std::vector<std::string> extra = {"a-", "-b", "--"};
  struct Case {
    const char* behavior;
    bool invert;
    const char* text;
    std::vector<int32_t> want;
  };
  const std::vector<Case> cases = {
      {"Isolated", false, "a-b", {0, 2, 1}},
      {"Removed", false, "a-b", {0, 1}},
      {"MergedWithPrevious", false, "a-b", {5, 1}},
      {"MergedWithNext", false, "a-b", {0, 6}},
      {"Contiguous", false, "a--b", {0, 7, 1}},
      {"Isolated", false, "a--b", {0, 2, 2, 1}},
      {"Removed", true, "a-b", {2}},
      {"MergedWithPrevious", true, "a-b", {0, 6}},
      {"Isolated", false, "", {}},
      {"Removed", false, "--", {}},
  };
  for (const Case& c : cases) {
    TempDir dir;
    Result<Tokenizer> tok = load_spec(dir, tiny_spec(split_dash(c.behavior, c.invert), merges, extra));
    ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
    EXPECT_EQ(ids_of(*tok, c.text), c.want) << c.behavior << " invert=" << c.invert << " text=" << c.text;
  }
}

TEST(TokenizerSynthetic, MergesAsStringsAndByteLevelPrefixSpace) {
  TempDir dir;
  const json pre = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  Result<Tokenizer> tok = load_spec(dir, tiny_spec(pre, json::array({"Ġ a", "Ġa b"}), {"Ġa", "Ġab"}));
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  // add_prefix_space turns "ab" into " ab" -> "Ġab"; the GPT-2 regex splits off "-".
  EXPECT_EQ(ids_of(*tok, "ab"), (std::vector<int32_t>{6}));
  EXPECT_EQ(ids_of(*tok, "ab-a"), (std::vector<int32_t>{6, 2, 0}));
  EXPECT_EQ(decoded(*tok, {6}), " ab");
}

TEST(TokenizerSynthetic, AddedTokenStripFlags) {
  TempDir dir;
  json spec =
      tiny_spec({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}, json::array());
  spec["added_tokens"] = json::array({{{"id", 10},
                                       {"content", "<L>"},
                                       {"special", true},
                                       {"lstrip", true},
                                       {"rstrip", false},
                                       {"single_word", false},
                                       {"normalized", false}},
                                      {{"id", 11},
                                       {"content", "<R>"},
                                       {"special", false},
                                       {"lstrip", false},
                                       {"rstrip", true},
                                       {"single_word", false},
                                       {"normalized", true}},
                                      {{"id", 12},
                                       {"content", "<R>x"},
                                       {"special", true},
                                       {"lstrip", false},
                                       {"rstrip", false},
                                       {"single_word", false},
                                       {"normalized", false}}});
  Result<Tokenizer> tok = load_spec(dir, spec);
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  EXPECT_EQ(ids_of(*tok, "a  <L>b"), (std::vector<int32_t>{0, 10, 1}));  // spaces before <L> swallowed
  EXPECT_EQ(ids_of(*tok, "a<R>  b"), (std::vector<int32_t>{0, 11, 1}));  // spaces after <R> swallowed
  EXPECT_EQ(ids_of(*tok, "a <R>x"), (std::vector<int32_t>{0, 3, 12}));   // longest raw match wins first
  EXPECT_EQ(tok->vocab_size(), 13);
  EXPECT_TRUE(tok->is_special(10));
  EXPECT_FALSE(tok->is_special(11));
  EXPECT_FALSE(tok->has_token(9));
  Result<std::string> hole = tok->decode(std::vector<int32_t>{9});
  EXPECT_FALSE(hole.is_ok());
}

TEST(TokenizerNormalizer, NfcAndNfdFollowUax15) {
  // Composition across a reordered mark: ḋ + dot below -> ḍ + dot above.
  EXPECT_EQ(unicode::nfc("\xE1\xB8\x8B\xCC\xA3"), "\xE1\xB8\x8D\xCC\x87");
  EXPECT_EQ(unicode::nfd("\xC3\xA9"), "e\xCC\x81");
  EXPECT_EQ(unicode::nfc("e\xCC\x81"), "\xC3\xA9");
  // Hangul: conjoining jamo compose arithmetically, and decompose back.
  EXPECT_EQ(unicode::nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"), "\xEA\xB0\x81");  // 각
  EXPECT_EQ(unicode::nfd("\xEA\xB0\x81"), "\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8");
  // Composition exclusions and singletons stay decomposed: U+0958 -> U+0915 U+093C; Ω (U+2126) -> Ω (U+03A9).
  EXPECT_EQ(unicode::nfc("\xE0\xA5\x98"), "\xE0\xA4\x95\xE0\xA4\xBC");
  EXPECT_EQ(unicode::nfc("\xE2\x84\xA6"), "\xCE\xA9");
  // Blocked: a starter, or a mark of the same class, between base and mark.
  EXPECT_EQ(unicode::nfc("ab\xCC\x81"), "ab\xCC\x81");
  EXPECT_EQ(unicode::nfc("a\xCC\x81\xCC\x81"), "\xC3\xA1\xCC\x81");
  // Not blocked by a mark of lower class: reordered to a + U+0323 (220) + U+0301 (230) -> U+1EA1 + U+0301.
  EXPECT_EQ(unicode::nfc("a\xCC\x81\xCC\xA3"), "\xE1\xBA\xA1\xCC\x81");
  EXPECT_EQ(unicode::nfc("plain ascii"), "plain ascii");
  EXPECT_EQ(unicode::nfc("中文"), "中文");
}

TEST(TokenizerErrors, MissingTokenizerJsonNamesTheFile) {
  TempDir dir;
  Result<Tokenizer> r = Tokenizer::load(dir.path());
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("tokenizer.json"), std::string::npos) << r.status().message();
  EXPECT_FALSE(Tokenizer::load(dir.path() / "does_not_exist").is_ok());
}

TEST(TokenizerErrors, CorruptJsonNamesTheFile) {
  TempDir dir;
  dir.write("tokenizer.json", "{\"model\": {\"vocab\": [1, 2,");
  Result<Tokenizer> r = Tokenizer::load(dir.path());
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find((dir.path() / "tokenizer.json").string()), std::string::npos)
      << r.status().message();

  TempDir dir2;
  dir2.write("tokenizer.json", tiny_spec(nullptr, json::array()).dump());
  dir2.write("tokenizer_config.json", "not json");
  Result<Tokenizer> r2 = Tokenizer::load(dir2.path());
  ASSERT_FALSE(r2.is_ok());
  EXPECT_NE(r2.status().message().find("tokenizer_config.json"), std::string::npos) << r2.status().message();
}

TEST(TokenizerErrors, BadContentNamesTheField) {
  struct Case {
    std::function<void(json&)> corrupt;
    StatusCode code;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {[](json& s) {
         s["pre_tokenizer"] = {{"type", "Whitespace"}};
       },
       StatusCode::kUnimplemented, "'Whitespace'"},
      {[](json& s) {
         s["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFKC"}}}}};
       },
       StatusCode::kUnimplemented, "normalizer.normalizers[0]: normalizer type 'NFKC'"},
      {[](json& s) { s["model"]["type"] = "WordPiece"; }, StatusCode::kUnimplemented, "model.type"},
      {[](json& s) {
         s["decoder"] = {{"type", "Metaspace"}};
       },
       StatusCode::kUnimplemented, "Metaspace"},
      {[](json& s) {
         s["post_processor"] = {{"type", "BertProcessing"}};
       },
       StatusCode::kUnimplemented, "'BertProcessing'"},
      {[](json& s) { s["model"]["merges"] = json::array({"a q"}); }, StatusCode::kInvalidArgument,
       "model.merges[0]: token \"q\""},
      {[](json& s) { s["model"]["merges"] = json::array({"a b"}); }, StatusCode::kInvalidArgument,
       "merged token \"ab\""},
      {[](json& s) { s["model"]["vocab"]["a"] = "zero"; }, StatusCode::kInvalidArgument,
       "model.vocab[\"a\"]"},
      {[](json& s) {
         s["pre_tokenizer"] = {
             {"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
       },
       StatusCode::kInvalidArgument, "pre_tokenizer.pattern.Regex"},
      {[](json& s) {
         s["added_tokens"] = json::array({{{"content", "<x>"}}});
       },
       StatusCode::kInvalidArgument, "added_tokens[0]"},
  };
  for (const Case& c : cases) {
    TempDir dir;
    json spec = tiny_spec(nullptr, json::array());
    c.corrupt(spec);
    Result<Tokenizer> r = load_spec(dir, spec);
    ASSERT_FALSE(r.is_ok()) << c.needle;
    EXPECT_EQ(r.status().code(), c.code) << r.status().to_string();
    EXPECT_NE(r.status().message().find(c.needle), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find("tokenizer.json"), std::string::npos) << r.status().message();
  }
}

}  // namespace
}  // namespace longctx
