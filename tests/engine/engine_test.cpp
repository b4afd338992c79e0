// The engine against the transformers fixtures: many requests at once, chunked prefill,
// preemption and prefix caching must not change a single greedy token.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "engine/llm_engine.h"
#include "model/generation.h"
#include "model/safetensors.h"
#include "support/engine_harness.h"

namespace longctx {
namespace {

using namespace testing_support;

class EngineGoldenTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto m = DenseModel::load(hf_dir(GetParam()));
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    model_ = std::make_unique<DenseModel>(std::move(*m));
  }
  // Alone: the single-sequence path (no scheduler), the reference for batching.
  std::vector<int32_t> alone(const GenerationRequest& r) {
    GenerationOptions o;
    o.max_new_tokens = r.max_tokens;
    return generate(*model_, r.prompt_token_ids, o).value().token_ids;
  }
  void check_workload(EngineConfig cfg, bool expect_preemption) {
    // The four golden prompts plus 28 random ones of lengths 1..2100.
    Workload w = mixed_workload(GetParam(), {.count = 28, .max_len = 2100, .max_tokens = 12, .seed = 7});
    auto e = LLMEngine::create(*model_, nullptr, cfg);
    ASSERT_TRUE(e.is_ok()) << e.status().to_string();
    auto added = add_requests(**e, w.requests);
    ASSERT_TRUE(added.is_ok()) << added.status().to_string();
    const std::vector<RequestId>& ids = *added;
    auto got = run_all(**e);
    for (size_t i = 0; i < ids.size(); ++i) {
      const auto& want = w.golden[i].empty() ? alone(w.requests[i]) : w.golden[i];
      EXPECT_EQ(got[ids[i]], want) << GetParam() << " request " << i << " (prompt of "
                                   << w.requests[i].prompt_token_ids.size() << " tokens)";
    }
    const auto m = (*e)->metrics().snapshot();
    if (expect_preemption) {
      EXPECT_GT(m.num_preemptions, 0);
    }
    EXPECT_EQ(m.requests_finished, static_cast<int64_t>(ids.size()));
    EXPECT_EQ((*e)->kv_manager().num_free_blocks(),
              (*e)->num_kv_blocks() - 1);  // all returned (block 0 is null)
  }
  std::unique_ptr<DenseModel> model_;
};

TEST_P(EngineGoldenTest, ThirtyTwoConcurrentRequestsMatchAloneAndTransformers) {
  EngineConfig cfg;
  cfg.scheduler.max_num_batched_tokens = 512;  // long prompts are chunked across steps
  cfg.scheduler.max_num_seqs = 32;
  cfg.num_kv_blocks = 4096;
  check_workload(cfg, false);
}

TEST_P(EngineGoldenTest, TinyKvBudgetForcesPreemptionWithIdenticalOutput) {
  EngineConfig cfg;
  cfg.scheduler.max_num_batched_tokens = 256;
  cfg.scheduler.max_num_seqs = 32;
  cfg.num_kv_blocks = 160;  // 2100 + 16 tokens need 133 blocks: enough for one long request at a time
  // Admission by the first chunk: with whole-prompt reservation the long prompts would
  // wait their turn and nothing would be preempted, leaving recompute untested.
  cfg.scheduler.reserve_prompt_kv = false;
  check_workload(cfg, true);
}

// Policies reorder and chunk; they never change what is computed. One model suffices.
class EnginePolicyTest : public EngineGoldenTest {};

TEST_P(EnginePolicyTest, SlackPoliciesWithAdaptiveChunksChangeNoToken) {
  for (const char* policy : {"lrs"}) {  // srpt/edf orderings: tests/sched
    EngineConfig cfg;
    cfg.scheduler.max_num_batched_tokens = 512;
    cfg.scheduler.max_num_seqs = 32;
    cfg.num_kv_blocks = 4096;
    cfg.policy = policy;
    cfg.adaptive_chunking = true;
    cfg.chunking.tbt_slo_s = 0.002;  // tiny: forces small, shrinking chunks
    cfg.chunking.min_chunk = 16;
    check_workload(cfg, false);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, EnginePolicyTest, ::testing::Values("llama_gqa"));

INSTANTIATE_TEST_SUITE_P(Fixtures, EngineGoldenTest,
                         ::testing::Values("llama_gqa", "qwen2_bias_tied", "qwen3_qknorm"));

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = DenseModel::load(hf_dir("qwen3_qknorm"));
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    model_ = std::make_unique<DenseModel>(std::move(*m));
    EngineConfig cfg;
    cfg.num_kv_blocks = 1024;
    cfg.scheduler.max_num_batched_tokens = 256;
    engine_ = LLMEngine::create(*model_, nullptr, cfg).value();
  }
  std::unique_ptr<DenseModel> model_;
  std::unique_ptr<LLMEngine> engine_;
};

TEST_F(EngineTest, SharedPrefixIsServedFromTheCacheWithIdenticalOutput) {
  std::mt19937 rng(3);
  std::vector<int32_t> prefix(1000);
  for (auto& t : prefix) t = static_cast<int32_t>(3 + rng() % 500);
  auto a = greedy_request(prefix, 6), b = greedy_request(prefix, 6);
  b.prompt_token_ids.push_back(77);
  a.prompt_token_ids.push_back(77);
  const RequestId ida = engine_->add_request(a).value();
  auto first = run_all(*engine_);
  const RequestId idb = engine_->add_request(b).value();
  int64_t cached = -1;
  std::vector<int32_t> second;
  while (engine_->has_unfinished())
    for (const auto& o : engine_->step()) {
      cached = o.num_cached_tokens;
      second.insert(second.end(), o.new_token_ids.begin(), o.new_token_ids.end());
    }
  EXPECT_GE(cached, 992);
  EXPECT_EQ(second, first[ida]);
  EXPECT_NE(ida, idb);
  EXPECT_GT(engine_->metrics().snapshot().prefix_cache_hits, 0);
}

TEST_F(EngineTest, BadRequestsAreRejectedAndOthersKeepRunning) {
  const RequestId good = engine_->add_request(greedy_request({5, 6, 7}, 4)).value();
  auto expect_invalid = [&](GenerationRequest r, const std::string& field) {
    auto id = engine_->add_request(std::move(r));
    ASSERT_FALSE(id.is_ok()) << field;
    EXPECT_EQ(id.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(id.status().message().find(field), std::string::npos) << id.status().message();
  };
  expect_invalid(greedy_request({}, 4), "prompt");
  expect_invalid(greedy_request({5}, 0), "max_tokens");
  expect_invalid(greedy_request({5}, -3), "max_tokens");
  auto r = greedy_request({5}, 4);
  r.n = 0;
  expect_invalid(r, "n ");
  r = greedy_request({5}, 4);
  r.sampling.top_p = 1.5f;
  expect_invalid(r, "top_p");
  r.sampling.top_p = 0.0f;
  expect_invalid(r, "top_p");
  r = greedy_request({5}, 4);
  r.sampling.temperature = -1.0f;
  expect_invalid(r, "temperature");
  expect_invalid(greedy_request(std::vector<int32_t>(16380, 5), 10), "context length");
  expect_invalid(greedy_request({5, 512}, 4), "token id 512");
  r = greedy_request({5}, 4);
  r.stop = {"x"};
  expect_invalid(r, "stop");  // no tokenizer here
  auto got = run_all(*engine_);
  EXPECT_EQ(got[good].size(), 4u);
}

TEST_F(EngineTest, AbortFreesBlocksAndReportsAbort) {
  const RequestId a = engine_->add_request(greedy_request(std::vector<int32_t>(700, 9), 50)).value();
  const RequestId b = engine_->add_request(greedy_request({5, 6, 7}, 5)).value();
  engine_->step();
  engine_->abort(a);
  std::map<RequestId, std::string> reasons;
  auto got = run_all(*engine_, &reasons);
  EXPECT_EQ(reasons[a], "abort");
  EXPECT_EQ(reasons[b], "length");
  EXPECT_EQ(got[b].size(), 5u);
  EXPECT_EQ(engine_->kv_manager().num_free_blocks(), engine_->num_kv_blocks() - 1);
  EXPECT_EQ(engine_->metrics().snapshot().requests_aborted, 1);
}

TEST_F(EngineTest, SeededSamplingIsReproducibleAndNContinuationsDiffer) {
  auto r = greedy_request({5, 6, 7, 8}, 12);
  r.sampling.temperature = 1.0f;
  r.sampling.seed = 1234;
  r.n = 3;
  const RequestId x = engine_->add_request(r).value();
  std::map<std::pair<RequestId, int64_t>, std::vector<int32_t>> got;
  auto drain = [&] {
    while (engine_->has_unfinished())
      for (const auto& o : engine_->step()) {
        auto& v = got[{o.request_id, o.index}];
        v.insert(v.end(), o.new_token_ids.begin(), o.new_token_ids.end());
      }
  };
  drain();
  const RequestId y = engine_->add_request(r).value();
  drain();
  for (int64_t i = 0; i < 3; ++i) {
    const auto& first = got[std::make_pair(x, i)];
    EXPECT_EQ(first.size(), 12u);
    EXPECT_EQ(first, got[std::make_pair(y, i)]) << "continuation " << i;
  }
  EXPECT_NE(got[std::make_pair(x, int64_t{0})], got[std::make_pair(x, int64_t{1})]);
}

TEST_F(EngineTest, MinTokensBansStopTokensUntilReached) {
  // Make the greedy first token a stop token, then require at least 3 tokens.
  const std::vector<int32_t> prompt{5, 6, 7};
  GenerationOptions o;
  o.max_new_tokens = 1;
  const int32_t first = generate(*model_, prompt, o).value().token_ids[0];
  auto r = greedy_request(prompt, 8);
  r.stop_token_ids = {first};
  r.min_tokens = 3;
  const RequestId id = engine_->add_request(r).value();
  std::map<RequestId, std::string> reasons;
  auto got = run_all(*engine_, &reasons);
  ASSERT_GE(got[id].size(), 3u);
  EXPECT_NE(got[id][0], first);
}

TEST_F(EngineTest, PromptLogprobsCoverEveryPromptTokenAcrossChunks) {
  std::vector<int32_t> prompt(600);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>(3 + (i * 37) % 500);
  auto r = greedy_request(prompt, 2);
  r.prompt_logprobs = 2;
  engine_->add_request(r).value();
  std::optional<std::vector<std::optional<TokenLogprob>>> pl;
  while (engine_->has_unfinished())
    for (auto& o : engine_->step())
      if (o.prompt_logprobs) pl = o.prompt_logprobs;
  ASSERT_TRUE(pl.has_value());
  ASSERT_EQ(pl->size(), prompt.size());
  EXPECT_FALSE((*pl)[0].has_value());
  for (size_t i = 1; i < prompt.size(); ++i) {
    ASSERT_TRUE((*pl)[i].has_value()) << i;
    EXPECT_EQ((*pl)[i]->token, prompt[i]);
    EXPECT_LE((*pl)[i]->logprob, 0.0f);
    EXPECT_EQ((*pl)[i]->top.size(), 2u);
  }
}

}  // namespace
}  // namespace longctx
