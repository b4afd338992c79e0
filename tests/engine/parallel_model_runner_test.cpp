// ParallelModelRunner on its own: a StepPlan's logits equal the single-rank model's,
// sequence pipeline parallelism really overlaps the stages, and a failing rank ends the
// step with its own error (no hang) and leaves a runner that works on the next step.
#include "exec/parallel_model_runner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "model/dense_model.h"
#include "support/fixtures.h"

namespace longctx {
namespace {

using testing_support::hf_dir;
using testing_support::relative_error;

struct Fixture {
  std::unique_ptr<DenseModel> model;
  std::vector<int32_t> prompt;  // the longest golden prompt (2100 tokens)
  Tensor last_row;              // single-rank logits of its last position [1, vocab]
};

const Fixture& fixture() {
  static Fixture f = [] {
    Fixture x;
    x.model = std::make_unique<DenseModel>(DenseModel::load(hf_dir("llama_gqa")).value());
    for (auto& g : testing_support::load_goldens("llama_gqa"))
      if (g.ids.size() > x.prompt.size()) x.prompt = g.ids;
    SequenceKV kv = x.model->new_kv(static_cast<int64_t>(x.prompt.size()));
    const int64_t row[1] = {static_cast<int64_t>(x.prompt.size()) - 1};
    x.last_row = x.model->forward(x.prompt, kv, row).value();
    return x;
  }();
  return f;
}

ParallelLayout make_layout(ParallelConfig pc) {
  const ModelConfig& mc = fixture().model->config();
  return ParallelLayout::create(pc, {mc.num_heads, mc.num_kv_heads, mc.num_layers}).value();
}

std::unique_ptr<ParallelModelRunner> make_runner(const ParallelLayout& layout, int64_t spp) {
  ParallelRunnerOptions o;
  o.spp_chunk_tokens = spp;
  o.threads_per_rank = 1;
  const DenseModel& m = *fixture().model;
  return ParallelModelRunner::create(m.config(), m.weights(), layout, o).value();
}

// The whole prompt as one chunk of request 1, sampling its last position.
struct OnePrompt {
  Request req;
  StepPlan plan;
  OnePrompt() {
    req.id = 1;
    req.token_ids = fixture().prompt;
    req.num_prompt_tokens = req.num_tokens();
    ScheduledChunk c;
    c.request_id = 1;
    c.num_tokens = req.num_tokens();
    c.sample = true;
    plan.chunks.push_back(c);
    plan.num_batched_tokens = c.num_tokens;
  }
  Result<StepLogits> run(ParallelModelRunner& r) {
    return r.run(plan, [this](RequestId) -> const Request& { return req; }, [](RequestId) { return false; });
  }
};

TEST(ParallelModelRunner, SppPiecesGiveTheSingleRankLogits) {
  for (int64_t spp : {int64_t{0}, int64_t{256}, int64_t{1000}}) {
    ParallelConfig pc;
    pc.pp = 2;
    ParallelLayout layout = make_layout(pc);
    auto runner = make_runner(layout, spp);
    OnePrompt p;
    auto out = p.run(*runner);
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    const int64_t n = static_cast<int64_t>(fixture().prompt.size());
    EXPECT_EQ(runner->last_num_micro_batches(), spp == 0 ? 1 : (n + spp - 1) / spp) << "spp " << spp;
    ASSERT_EQ(out->rows.size(), 1u);
    EXPECT_EQ(out->rows[0].num_rows, 1);
    EXPECT_LE(relative_error(out->logits, fixture().last_row), 1e-4) << "spp " << spp;
    // Each stage holds every token of its layers.
    for (int64_t b : runner->request_blocks_per_rank(1)) EXPECT_EQ(b, (n + 15) / 16);
  }
}

// Two requests batched in one step — one asking for every position's logits, one a
// first chunk of a long prefill that continues in the next step — under each layout
// (SPP pieces where pp > 1): every row equals the single-rank model's (≤ 1e-4 relative).
TEST(ParallelModelRunner, BatchedChunksGiveTheSingleRankLogitsUnderEachLayout) {
  const DenseModel& dense = *fixture().model;
  std::vector<int32_t> short_prompt;
  testing_support::Golden golden;
  for (auto& g : testing_support::load_goldens("llama_gqa"))
    if (g.ids.size() == 300) golden = g;
  short_prompt = golden.ids;
  ASSERT_EQ(short_prompt.size(), 300u);
  SequenceKV kv = dense.new_kv(300);
  std::vector<int64_t> all(300);
  for (int64_t i = 0; i < 300; ++i) all[size_t(i)] = i;
  const Tensor short_rows = dense.forward(short_prompt, kv, all).value();

  struct Case {
    const char* name;
    int tp, dcp, cp, kvp, pp;
    int64_t shard;
  };
  for (const Case& lc : {Case{"tp2", 2, 1, 1, 1, 1, 0}, Case{"tp4_dcp2", 4, 2, 1, 1, 1, 0},
                         Case{"cp2", 1, 1, 2, 1, 1, 0}, Case{"kvp2", 1, 1, 1, 2, 1, 512},
                         Case{"tp2_cp2_pp2", 2, 1, 2, 1, 2, 0}, Case{"kvp2_pp2", 1, 1, 1, 2, 2, 256}}) {
    ParallelConfig pc;
    pc.tp = lc.tp;
    pc.dcp = lc.dcp;
    pc.cp = lc.cp;
    pc.kvp = lc.kvp;
    pc.pp = lc.pp;
    pc.kvp_shard_tokens = lc.shard;
    ParallelLayout layout = make_layout(pc);
    auto runner = make_runner(layout, 64);
    std::map<RequestId, Request> reqs;
    reqs[1].token_ids = short_prompt;
    reqs[2].token_ids = fixture().prompt;
    auto request = [&](RequestId id) -> const Request& { return reqs.at(id); };
    auto every_row = [](RequestId id) { return id == 1; };
    StepPlan first;
    first.chunks.push_back({1, 0, 300, true, {}});
    first.chunks.push_back({2, 0, 1024, false, {}});
    auto out = runner->run(first, request, every_row);
    ASSERT_TRUE(out.is_ok()) << lc.name << ": " << out.status().to_string();
    ASSERT_EQ(out->rows[0].num_rows, 300) << lc.name;
    EXPECT_LE(relative_error(out->logits.slice(0, out->rows[0].first_row, out->rows[0].first_row + 300).clone(),
                             short_rows),
              1e-4)
        << lc.name;
    // …and transformers' float64 logits at the golden positions (the fixtures' 1e-3).
    Tensor at_golden = Tensor::empty({static_cast<int64_t>(golden.logit_pos.size()), dense.config().vocab_size},
                                     DType::kF32);
    for (size_t k = 0; k < golden.logit_pos.size(); ++k) {
      const int64_t row = out->rows[0].first_row + golden.logit_pos[k];
      at_golden.slice(0, int64_t(k), int64_t(k) + 1).copy_from(out->logits.slice(0, row, row + 1));
    }
    EXPECT_LE(relative_error(at_golden, golden.logits), 1e-3) << lc.name;
    EXPECT_EQ(out->rows[1].first_row, -1) << lc.name;  // a prefill chunk that samples nothing
    StepPlan second;
    const int64_t rest = static_cast<int64_t>(fixture().prompt.size()) - 1024;
    second.chunks.push_back({2, 1024, rest, true, {}});
    auto last = runner->run(second, request, every_row);
    ASSERT_TRUE(last.is_ok()) << lc.name << ": " << last.status().to_string();
    EXPECT_LE(relative_error(last->logits, fixture().last_row), 1e-4) << lc.name;
    runner->release(1);
    runner->release(2);
    EXPECT_EQ(runner->num_sequences(), 0);
  }
}

// SPP's point: stage 0 starts piece c + 1 while stage 1 still works on piece c. Stage 1
// holds each piece open until stage 0 has begun the next one, so this passes only if
// the runner issues piece c + 1 to stage 0 without waiting for stage 1 (an executor
// that waited for the last stage would stall here; the wait's bound only ends such a
// stall so the test can fail instead of hanging). The order is read off a logical
// clock, not wall time.
TEST(ParallelModelRunner, SppStreamsPiecesThroughTheStagesBackToBack) {
  ParallelConfig pc;
  pc.pp = 2;
  ParallelLayout layout = make_layout(pc);
  auto runner = make_runner(layout, 256);
  const int stage0 = 0, stage1 = 1;  // tp = cp = kvp = 1: rank = pp stage
  ASSERT_EQ(layout.coords(stage1).pp, 1);

  std::mutex mu;
  std::condition_variable cv;
  std::atomic<int64_t> clock{0};
  std::map<std::pair<int, int64_t>, int64_t> begin, end;  // (rank, piece) → tick
  int64_t stage0_begun = -1;
  bool stalled = false;
  const int64_t pieces = (static_cast<int64_t>(fixture().prompt.size()) + 255) / 256;
  runner->set_observer([&](int rank, int64_t mb, MicroBatchEvent ev) {
    std::unique_lock<std::mutex> lock(mu);
    (ev == MicroBatchEvent::kBegin ? begin : end)[{rank, mb}] = clock++;
    if (rank == stage0 && ev == MicroBatchEvent::kBegin) {
      stage0_begun = mb;
      cv.notify_all();
    }
    if (rank == stage1 && ev == MicroBatchEvent::kBegin && mb + 1 < pieces) {
      // Once stalled, stop waiting: the verdict is in and the rest should finish.
      if (!stalled && !cv.wait_for(lock, std::chrono::seconds(60), [&] { return stage0_begun >= mb + 1; }))
        stalled = true;
    }
  });
  OnePrompt p;
  auto out = p.run(*runner);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_FALSE(stalled) << "stage 0 did not start the next piece while stage 1 held the current one";
  ASSERT_EQ(runner->last_num_micro_batches(), pieces);
  for (int64_t c = 0; c + 1 < pieces; ++c)
    EXPECT_LT(begin[std::make_pair(stage0, c + 1)], end[std::make_pair(stage1, c)]) << "piece " << c;
  EXPECT_LE(relative_error(out->logits, fixture().last_row), 1e-4);
}

TEST(ParallelModelRunner, AFailingRankEndsTheStepWithItsErrorAndTheNextStepWorks) {
  ParallelConfig pc;
  pc.tp = 2;
  pc.pp = 2;
  ParallelLayout layout = make_layout(pc);
  auto runner = make_runner(layout, 512);
  runner->set_observer([](int rank, int64_t mb, MicroBatchEvent ev) {
    if (rank == 3 && mb == 1 && ev == MicroBatchEvent::kBegin) throw std::runtime_error("injected failure");
  });
  OnePrompt p;
  auto out = p.run(*runner);
  ASSERT_FALSE(out.is_ok());
  EXPECT_NE(out.status().message().find("rank 3: injected failure"), std::string::npos) << out.status().to_string();
  EXPECT_EQ(runner->num_sequences(), 0);  // the half-written caches are gone

  runner->set_observer(nullptr);
  auto again = p.run(*runner);
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  EXPECT_LE(relative_error(again->logits, fixture().last_row), 1e-4);
}

TEST(ParallelModelRunner, RefusesAStepThatOverflowsARankBeforeTouchingACache) {
  ParallelConfig pc;
  pc.kvp = 2;
  pc.kvp_shard_tokens = 1024;
  ParallelLayout layout = make_layout(pc);
  ParallelRunnerOptions o;
  o.blocks_per_rank = 60;  // the 2100-token prompt puts 64 blocks on the first group
  o.threads_per_rank = 1;
  const DenseModel& m = *fixture().model;
  auto runner = ParallelModelRunner::create(m.config(), m.weights(), layout, o).value();
  OnePrompt p;
  EXPECT_EQ(runner->max_rank_blocks(static_cast<int64_t>(fixture().prompt.size())), 68);  // 1076 tokens on group 1
  Status st = runner->check_budget(p.plan);
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(st.message().find("rank 0 would hold 64 KV blocks"), std::string::npos) << st.message();
  auto out = p.run(*runner);
  EXPECT_FALSE(out.is_ok());
  EXPECT_EQ(runner->num_sequences(), 0);
}

}  // namespace
}  // namespace longctx
