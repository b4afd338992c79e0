// The dense Llama family against Hugging Face transformers: float64 reference logits
// and greedy continuations from the reference fixtures copied into tests/data/hf.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "model/dense_model.h"
#include "model/generation.h"
#include "model/safetensors.h"
#include "support/fixtures.h"

namespace longctx {
namespace {

using testing_support::Golden;
using testing_support::load_goldens;
using testing_support::relative_error;
const std::string kHf = std::string(LONGCTX_TEST_DATA_DIR) + "/hf/";

Tensor logits_at(const DenseModel& m, const Golden& g, int64_t chunk) {
  SequenceKV kv = m.new_kv(static_cast<int64_t>(g.ids.size()));
  const int64_t n = static_cast<int64_t>(g.ids.size());
  Tensor out = Tensor::empty({static_cast<int64_t>(g.logit_pos.size()), m.config().vocab_size}, DType::kF32);
  int64_t written = 0;
  for (int64_t begin = 0; begin < n; begin += chunk) {
    const int64_t len = std::min(chunk, n - begin);
    std::vector<int64_t> rows;
    for (int64_t p : g.logit_pos)
      if (p >= begin && p < begin + len) rows.push_back(p - begin);
    auto logits = m.forward(std::span(g.ids).subspan(begin, len), kv, rows);
    EXPECT_TRUE(logits.is_ok()) << logits.status().to_string();
    out.slice(0, written, written + static_cast<int64_t>(rows.size())).copy_from(*logits);
    written += static_cast<int64_t>(rows.size());
  }
  return out;
}

class DenseGoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(DenseGoldenTest, Fp32LogitsMatchTransformers) {
  auto model = DenseModel::load(kHf + GetParam());
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  for (const Golden& g : load_goldens(GetParam())) {
    const double err = relative_error(logits_at(*model, g, static_cast<int64_t>(g.ids.size())), g.logits);
    EXPECT_LE(err, 1e-3) << GetParam() << " prompt of " << g.ids.size() << " tokens";
  }
}

TEST_P(DenseGoldenTest, ChunkedPrefillOverCachedPrefixMatchesTransformers) {
  auto model = DenseModel::load(kHf + GetParam());
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  for (const Golden& g : load_goldens(GetParam())) {
    const double err = relative_error(logits_at(*model, g, 7), g.logits);
    EXPECT_LE(err, 1e-3) << GetParam() << " prompt of " << g.ids.size() << " tokens, chunks of 7";
  }
}

TEST_P(DenseGoldenTest, EveryChunkSizeGivesTheOneShotLogits) {
  auto model = DenseModel::load(kHf + GetParam());
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  for (const Golden& g : load_goldens(GetParam())) {
    if (g.ids.size() < 300) continue;
    const Tensor whole = logits_at(*model, g, static_cast<int64_t>(g.ids.size()));
    for (int64_t chunk : {1, 7, 64, 512}) {
      if (chunk == 1 && g.ids.size() > 300) continue;  // 2100 one-token steps: slow, and 300 covers it
      EXPECT_LE(relative_error(logits_at(*model, g, chunk), whole), 1e-4)
          << GetParam() << " prompt of " << g.ids.size() << " tokens, chunks of " << chunk;
    }
  }
}

TEST_P(DenseGoldenTest, GreedyGenerationMatchesTransformers) {
  auto model = DenseModel::load(kHf + GetParam());
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  for (const Golden& g : load_goldens(GetParam())) {
    GenerationOptions opts;
    opts.max_new_tokens = static_cast<int64_t>(g.greedy.size());
    auto out = generate(*model, g.ids, opts);
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    EXPECT_EQ(out->token_ids, g.greedy) << GetParam() << " prompt of " << g.ids.size() << " tokens";
  }
}

// bf16 weights (rounded from the fp32 file, computed with fp32 accumulation): the
// bound we meet against the float64 reference, measured on these fixtures. Dense
// models: 1.1e-2 to 1.5e-2. Routed models are not smooth in their weights: a token whose
// router scores nearly tie can pick another expert once the hidden state moves by bf16
// rounding (measured: mixtral_moe 2.0e-2, qwen3_moe 1.9e-1, from such flips);
// deepseek_v3_mla measured 1.5e-2.
double bf16_bound(const std::string& model) {
  return model == "mixtral_moe" || model == "qwen3_moe" ? 2.5e-1 : 2e-2;
}

TEST_P(DenseGoldenTest, Bf16WeightsStayWithinStatedBound) {
  ModelLoadOptions opts;
  opts.dtype = DType::kBF16;
  auto model = DenseModel::load(kHf + GetParam(), opts);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  double worst = 0;
  for (const Golden& g : load_goldens(GetParam()))
    worst = std::max(worst, relative_error(logits_at(*model, g, static_cast<int64_t>(g.ids.size())), g.logits));
  RecordProperty("bf16_relative_error", std::to_string(worst));
  std::printf("[ bf16 ] %s: max|Δ|/max|ref| = %.3g\n", GetParam().c_str(), worst);
  EXPECT_LE(worst, bf16_bound(GetParam()));
  EXPECT_GT(worst, 0.0);  // the weights really were rounded
}

INSTANTIATE_TEST_SUITE_P(Fixtures, DenseGoldenTest,
                         ::testing::Values("llama_gqa", "qwen2_bias_tied", "qwen3_qknorm", "mixtral_moe",
                                           "qwen3_moe", "deepseek_v3_mla"));

TEST(DenseModelErrors, TokenIdOutsideVocabularyIsRejected) {
  auto model = DenseModel::load(kHf + "llama_gqa");
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  SequenceKV kv = model->new_kv(4);
  const std::vector<int32_t> ids{5, 512, 7};
  const std::vector<int64_t> rows{2};
  auto r = model->forward(ids, kv, rows);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("512"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("index 1"), std::string::npos) << r.status().message();
  EXPECT_EQ(kv.num_tokens(), 0);  // nothing half-written
}

}  // namespace
}  // namespace longctx
