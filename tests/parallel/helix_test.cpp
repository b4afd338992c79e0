// Helix's communication, as docs/parallelism.md states it: per layer no collective
// before attention, one all-to-all of partial states in the KVP group carrying each
// member one head share, and two all-reduces of t·h over all kvp·tpa ranks; the LM head
// gathered over them. Against plain KVP with the same ranks: the merge moves 1/kvp of
// the floats. Counted on a decorator around every group's communicator; the logits
// themselves are checked against single-rank in sharded_dense_model_test.cpp.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "model/sharded_dense_model.h"
#include "parallel/host_communicator.h"
#include "support/sharded_harness.h"

namespace longctx {
namespace {

struct Call {
  std::string group, op;
  int64_t count;  // the count argument: floats per member for all_gather / all_to_all
  bool operator==(const Call&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Call& c) {
  return os << c.group << "." << c.op << "(" << c.count << ")";
}

// Records each collective of one rank's group, then forwards it unchanged.
class CountingCommunicator : public Communicator {
 public:
  CountingCommunicator(std::unique_ptr<Communicator> inner, std::string group, std::vector<Call>* log)
      : inner_(std::move(inner)), group_(std::move(group)), log_(log) {}
  int size() const override { return inner_->size(); }
  int rank() const override { return inner_->rank(); }
  const std::string& name() const override { return inner_->name(); }
  void all_reduce_sum(float* data, int64_t count) override {
    note("all_reduce_sum", count);
    inner_->all_reduce_sum(data, count);
  }
  void all_gather(const float* send, int64_t count, float* recv) override {
    note("all_gather", count);
    inner_->all_gather(send, count, recv);
  }
  void reduce_scatter_sum(const float* send, int64_t count, float* recv) override {
    note("reduce_scatter_sum", count);
    inner_->reduce_scatter_sum(send, count, recv);
  }
  void all_to_all(const float* send, int64_t count, float* recv) override {
    note("all_to_all", count);
    inner_->all_to_all(send, count, recv);
  }
  void broadcast(float* data, int64_t count, int root) override {
    note("broadcast", count);
    inner_->broadcast(data, count, root);
  }
  void send(const float* data, int64_t count, int peer) override {
    note("send", count);
    inner_->send(data, count, peer);
  }
  void recv(float* data, int64_t count, int peer) override {
    note("recv", count);
    inner_->recv(data, count, peer);
  }
  void sendrecv(const float* send_data, int64_t send_count, int to, float* recv_data, int64_t recv_count,
                int from) override {
    note("sendrecv", send_count);
    inner_->sendrecv(send_data, send_count, to, recv_data, recv_count, from);
  }
  void barrier() override { inner_->barrier(); }

 private:
  void note(const char* op, int64_t count) { log_->push_back({group_, op, count}); }
  std::unique_ptr<Communicator> inner_;
  std::string group_;
  std::vector<Call>* log_;
};

void count_calls(RankCommunicators& c, std::vector<Call>* log) {
  const auto wrap = [log](std::unique_ptr<Communicator>& comm, const char* group) {
    if (comm) comm = std::make_unique<CountingCommunicator>(std::move(comm), group, log);
  };
  wrap(c.tp, "tp");
  wrap(c.dcp, "dcp");
  wrap(c.cp, "cp");
  wrap(c.kvp, "kvp");
  wrap(c.pp, "pp");
  wrap(c.helix, "helix");
}

const testing_support::ModelWeights& llama() {
  static const testing_support::ModelWeights f = testing_support::load_model_weights("llama_gqa");
  return f;
}

// Rank 0's collectives in one step of `step_tokens` new tokens after a prefill of
// `context` tokens (the prefill's calls are not recorded).
std::vector<Call> calls_of_one_step(const ParallelConfig& pc, int64_t context, int64_t step_tokens) {
  const testing_support::ModelWeights& f = llama();
  auto layout = ParallelLayout::create(pc, f.dims());
  EXPECT_TRUE(layout.is_ok()) << layout.status().to_string();
  if (!layout.is_ok()) return {};
  HostWorld world(layout->world_size());
  std::vector<std::vector<Call>> logs(static_cast<size_t>(layout->world_size()));
  const Status st = run_on_ranks(world, [&](int r) -> Status {
    LONGCTX_ASSIGN_OR_RETURN(ShardedDenseModel model, ShardedDenseModel::shard(f.cfg, f.weights, *layout, r));
    RankCommunicators comms = RankCommunicators::host(world, *layout, r);
    std::vector<Call>& log = logs[size_t(r)];
    count_calls(comms, &log);
    ShardedSequenceKV kv = model.new_kv(context + step_tokens);
    std::vector<int32_t> ids(static_cast<size_t>(context));
    for (int64_t i = 0; i < context; ++i) ids[size_t(i)] = static_cast<int32_t>((i * 37 + 11) % 500);
    LONGCTX_RETURN_IF_ERROR(model.forward(ids, kv, std::vector<int64_t>{}, comms));
    log.clear();  // only the step's calls
    const std::vector<int32_t> step(static_cast<size_t>(step_tokens), 7);
    LONGCTX_RETURN_IF_ERROR(model.forward(step, kv, std::vector<int64_t>{step_tokens - 1}, comms));
    return Status::ok();
  });
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  return logs[0];
}

TEST(HelixCommunication, PerLayerOneAllToAllInKvpAndTwoAllReducesOverAllRanks) {
  const ModelConfig& m = llama().cfg;
  ASSERT_EQ(m.num_heads, 4);
  ASSERT_EQ(m.num_kv_heads, 2);
  ParallelConfig pc;
  pc.helix = true;
  pc.tp = 2;  // TPA: 2 query heads per rank
  pc.kvp = 2;
  pc.kvp_shard_tokens = 64;
  const int64_t d = m.head_dim, h = m.hidden_size, n = 4;  // N = kvp·tpa
  for (int64_t t : {int64_t{1}, int64_t{5}}) {
    // Each KVP rank owns 1 of its TPA rank's 2 heads: the all-to-all carries one head
    // share (t·1·(d + 1) floats: outputs, then LSE) to each member.
    std::vector<Call> want;
    for (int64_t l = 0; l < m.num_layers; ++l) {
      want.push_back({"kvp", "all_to_all", t * 1 * (d + 1)});
      want.push_back({"helix", "all_reduce_sum", t * h});
      want.push_back({"helix", "all_reduce_sum", t * h});
    }
    want.push_back({"helix", "all_gather", m.vocab_size / n});  // the one logit row, vocab split N ways
    // The same calls whatever the context: the exchange is O(t), never O(T).
    for (int64_t context : {int64_t{40}, int64_t{300}})
      EXPECT_EQ(calls_of_one_step(pc, context, t), want) << "t " << t << ", context " << context;
  }
}

TEST(HelixCommunication, MergeMovesOneKvpthOfPlainKvpsAllGather) {
  const ModelConfig& m = llama().cfg;
  const int64_t d = m.head_dim, h = m.hidden_size;
  ParallelConfig kvp;
  kvp.tp = 2;
  kvp.kvp = 2;
  kvp.kvp_shard_tokens = 64;
  ParallelConfig helix = kvp;
  helix.helix = true;
  // Plain KVP: each rank all-gathers the partial states of all its 2 heads.
  std::vector<Call> want_kvp;
  for (int64_t l = 0; l < m.num_layers; ++l) {
    want_kvp.push_back({"kvp", "all_gather", 2 * (d + 1)});
    want_kvp.push_back({"tp", "all_reduce_sum", h});
    want_kvp.push_back({"tp", "all_reduce_sum", h});
  }
  want_kvp.push_back({"tp", "all_gather", m.vocab_size / 2});
  EXPECT_EQ(calls_of_one_step(kvp, 100, 1), want_kvp);
  // Helix: what a rank receives in the merge is (kvp − 1) · count per collective.
  const std::vector<Call> got = calls_of_one_step(helix, 100, 1);
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got[0].op, "all_to_all");
  EXPECT_EQ(got[0].count * 2, want_kvp[0].count);  // 1/kvp of the floats
}

TEST(HelixCommunication, UnevenHeadSharesArePaddedToTheLargest) {
  // kvp 3 over 4 heads (tp 1): shares 1, 1, 2 — every member's message holds 2 heads.
  const ModelConfig& m = llama().cfg;
  ParallelConfig pc;
  pc.helix = true;
  pc.kvp = 3;
  pc.kvp_shard_tokens = 16;
  const std::vector<Call> got = calls_of_one_step(pc, 50, 3);
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got[0], (Call{"kvp", "all_to_all", 3 * 2 * (m.head_dim + 1)}));
  // 512 is not a multiple of 3: the LM head is replicated and nothing is gathered.
  EXPECT_EQ(got.back(), (Call{"helix", "all_reduce_sum", 3 * m.hidden_size}));
}

}  // namespace
}  // namespace longctx
