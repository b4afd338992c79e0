// Stop strings on real detokenized text (tiny Qwen3 with the real tokenizer): a stop
// string that spans a token boundary is caught, cut from the text, and reported.
#include <gtest/gtest.h>

#include <filesystem>

#include "engine/llm_engine.h"
#include "model/presets.h"

namespace longctx {
namespace {

namespace fs = std::filesystem;

struct Collected {
  std::vector<int32_t> ids;
  std::string text, finish_reason;
  std::variant<std::monostate, std::string, int32_t> stop_reason;
};

Collected run(LLMEngine& e, GenerationRequest r) {
  const RequestId id = e.add_request(std::move(r)).value();
  Collected c;
  while (e.has_unfinished())
    for (const auto& o : e.step()) {
      EXPECT_EQ(o.request_id, id);
      c.ids.insert(c.ids.end(), o.new_token_ids.begin(), o.new_token_ids.end());
      c.text += o.text;
      if (o.finished) {
        c.finish_reason = o.finish_reason;
        c.stop_reason = o.stop_reason;
      }
    }
  return c;
}

TEST(EngineStopStrings, StopStringAcrossATokenBoundaryIsCaughtAndCut) {
  const fs::path dir = fs::temp_directory_path() / ("longctx_stop_" + std::to_string(::getpid()));
  MakeModelOptions mo;
  mo.out_dir = dir;
  mo.tokenizers_dir = LONGCTX_TOKENIZERS_DIR;
  ASSERT_TRUE(make_model(find_model_preset("qwen3", "tiny").value(), mo).is_ok());
  auto model = DenseModel::load(dir).value();
  auto tok = Tokenizer::load(dir).value();
  EngineConfig cfg;
  cfg.num_kv_blocks = 256;
  auto engine = LLMEngine::create(model, &tok, cfg).value();

  GenerationRequest r;
  r.prompt_token_ids = tok.encode("The quick brown fox").value();
  r.max_tokens = 24;
  r.sampling.temperature = 0;
  r.ignore_eos = true;
  const Collected free_run = run(*engine, r);
  ASSERT_EQ(free_run.ids.size(), 24u);
  EXPECT_EQ(free_run.text, tok.decode(free_run.ids, true).value());  // streamed text == decode

  // A stop string made of the last byte of one token's text and the first of the next.
  std::string prefix_text;
  std::string stop;
  for (size_t k = 0; k + 1 < free_run.ids.size() && stop.empty(); ++k) {
    const std::string a = tok.decode(std::vector<int32_t>{free_run.ids[k]}, true).value();
    const std::string b = tok.decode(std::vector<int32_t>{free_run.ids[k + 1]}, true).value();
    prefix_text += a;
    if (!a.empty() && !b.empty() && static_cast<unsigned char>(a.back()) < 0x80 &&
        static_cast<unsigned char>(b.front()) < 0x80)
      stop = std::string(1, a.back()) + b.front();
  }
  ASSERT_FALSE(stop.empty()) << "no ASCII token boundary in: " << free_run.text;
  const size_t at = free_run.text.find(stop);
  ASSERT_NE(at, std::string::npos);

  r.stop = {stop};
  const Collected stopped = run(*engine, r);
  EXPECT_EQ(stopped.finish_reason, "stop");
  ASSERT_TRUE(std::holds_alternative<std::string>(stopped.stop_reason));
  EXPECT_EQ(std::get<std::string>(stopped.stop_reason), stop);
  EXPECT_EQ(stopped.text, free_run.text.substr(0, at));  // cut before the stop string, nothing of it leaked
  EXPECT_LT(stopped.ids.size(), free_run.ids.size());

  r.include_stop_str_in_output = true;
  EXPECT_EQ(run(*engine, r).text, free_run.text.substr(0, at + stop.size()));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace longctx
