#include "parallel/host_communicator.h"

#include <omp.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <thread>
#include <vector>

namespace longctx {

// One rendezvous per group: a reusable (generation-counting) barrier plus the slots in
// which members publish their buffers for the current collective.
struct HostWorld::GroupState {
  explicit GroupState(int n) : size(n), send(static_cast<size_t>(n)), count(static_cast<size_t>(n)) {}
  const int size;
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0;
  uint64_t generation = 0;
  std::vector<const float*> send;  // slot j written only by member j, read after the barrier
  std::vector<int64_t> count;
};

struct HostWorld::Mailbox {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::vector<float>> messages;
};

namespace {

void copy_floats(float* dst, const float* src, int64_t n) {
  if (dst != src && n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

class HostCommunicator final : public Communicator {
 public:
  HostCommunicator(HostWorld& world, std::shared_ptr<HostWorld::GroupState> state, ProcessGroup group,
                   int index)
      : world_(world), state_(std::move(state)), group_(std::move(group)), index_(index) {}

  int size() const override { return group_.size(); }
  int rank() const override { return index_; }
  const std::string& name() const override { return group_.name; }

  void all_reduce_sum(float* data, int64_t count) override {
    if (size() == 1) return;
    publish(data, count, "all_reduce_sum");
    scratch_.assign(static_cast<size_t>(count), 0.0f);
    sum_slots(0, count);
    barrier();
    copy_floats(data, scratch_.data(), count);
  }

  void all_gather(const float* send, int64_t count, float* recv) override {
    if (size() == 1) return copy_floats(recv, send, count);
    publish(send, count, "all_gather");
    scratch_.resize(static_cast<size_t>(count * size()));
    for (int j = 0; j < size(); ++j) copy_floats(scratch_.data() + j * count, state_->send[size_t(j)], count);
    barrier();
    copy_floats(recv, scratch_.data(), count * size());
  }

  void reduce_scatter_sum(const float* send, int64_t count, float* recv) override {
    if (size() == 1) return copy_floats(recv, send, count);
    publish(send, count, "reduce_scatter_sum");
    scratch_.assign(static_cast<size_t>(count), 0.0f);
    sum_slots(index_ * count, count);
    barrier();
    copy_floats(recv, scratch_.data(), count);
  }

  void all_to_all(const float* send, int64_t count, float* recv) override {
    if (size() == 1) return copy_floats(recv, send, count);
    publish(send, count, "all_to_all");
    scratch_.resize(static_cast<size_t>(count * size()));
    for (int j = 0; j < size(); ++j)
      copy_floats(scratch_.data() + j * count, state_->send[size_t(j)] + index_ * count, count);
    barrier();
    copy_floats(recv, scratch_.data(), count * size());
  }

  void broadcast(float* data, int64_t count, int root) override {
    check_peer(root, "broadcast");
    if (size() == 1) return;
    publish(data, count, "broadcast");
    if (index_ != root) copy_floats(data, state_->send[size_t(root)], count);
    barrier();  // the root's buffer may change only after everyone has copied it
  }

  void send(const float* data, int64_t count, int peer) override {
    check_peer(peer, "send");
    auto box = world_.mailbox(group_.ranks[size_t(index_)], group_.ranks[size_t(peer)]);
    {
      std::lock_guard<std::mutex> lock(box->mu);
      box->messages.emplace_back(data, data + count);
    }
    box->cv.notify_all();
  }

  void recv(float* data, int64_t count, int peer) override {
    check_peer(peer, "recv");
    auto box = world_.mailbox(group_.ranks[size_t(peer)], group_.ranks[size_t(index_)]);
    std::unique_lock<std::mutex> lock(box->mu);
    box->cv.wait(lock, [&] { return !box->messages.empty() || world_.aborted(); });
    if (box->messages.empty()) throw CommAborted();
    std::vector<float> msg = std::move(box->messages.front());
    box->messages.pop_front();
    lock.unlock();
    if (static_cast<int64_t>(msg.size()) != count)
      throw std::logic_error(group_.name + ": recv of " + std::to_string(count) + " floats from member " +
                             std::to_string(peer) + " got a message of " + std::to_string(msg.size()));
    copy_floats(data, msg.data(), count);
  }

  void barrier() override {
    if (size() == 1) return;
    GroupState& s = *state_;
    std::unique_lock<std::mutex> lock(s.mu);
    const uint64_t gen = s.generation;
    if (++s.arrived == s.size) {
      s.arrived = 0;
      ++s.generation;
      s.cv.notify_all();
      return;
    }
    s.cv.wait(lock, [&] { return s.generation != gen || world_.aborted(); });
    if (s.generation == gen) throw CommAborted();
  }

 private:
  using GroupState = HostWorld::GroupState;

  // Publishes this member's buffer, waits for all, and checks that counts agree.
  void publish(const float* buf, int64_t count, const char* op) {
    state_->send[size_t(index_)] = buf;
    state_->count[size_t(index_)] = count;
    barrier();
    for (int j = 0; j < size(); ++j)
      if (state_->count[size_t(j)] != count)
        throw std::logic_error(group_.name + ": " + op + " with " + std::to_string(count) +
                               " floats on member " + std::to_string(index_) + " but " +
                               std::to_string(state_->count[size_t(j)]) + " on member " + std::to_string(j));
  }

  // scratch_ = Σ_j slot_j[offset .. offset + count), in member order (bitwise reproducible).
  void sum_slots(int64_t offset, int64_t count) {
    float* acc = scratch_.data();
    for (int j = 0; j < size(); ++j) {
      const float* src = state_->send[size_t(j)] + offset;
      for (int64_t i = 0; i < count; ++i) acc[i] += src[i];
    }
  }

  void check_peer(int peer, const char* op) const {
    if (peer < 0 || peer >= size())
      throw std::out_of_range(group_.name + ": " + op + " peer " + std::to_string(peer) +
                              " is outside the group of " + std::to_string(size()));
  }

  HostWorld& world_;
  std::shared_ptr<GroupState> state_;
  ProcessGroup group_;
  int index_;
  std::vector<float> scratch_;
};

}  // namespace

HostWorld::HostWorld(int world_size) : size_(world_size) {}
HostWorld::~HostWorld() = default;

std::unique_ptr<Communicator> HostWorld::communicator(const ProcessGroup& group, int global_rank) {
  const int index = group.index_of(global_rank);
  if (index < 0)
    throw std::invalid_argument("rank " + std::to_string(global_rank) + " is not a member of group " +
                                group.name);
  std::string key = group.name + ":";
  for (int r : group.ranks) key += std::to_string(r) + ",";
  std::shared_ptr<GroupState> state;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = groups_[key];
    if (!slot) slot = std::make_shared<GroupState>(group.size());
    state = slot;
  }
  return std::make_unique<HostCommunicator>(*this, std::move(state), group, index);
}

std::shared_ptr<HostWorld::Mailbox> HostWorld::mailbox(int from, int to) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& box = mailboxes_[{from, to}];
  if (!box) box = std::make_shared<Mailbox>();
  return box;
}

void HostWorld::abort() {
  aborted_.store(true);
  std::lock_guard<std::mutex> lock(mu_);
  // Take each waiter's mutex before notifying so that no wake-up is lost between its
  // predicate check and its wait.
  for (auto& [key, g] : groups_) {
    { std::lock_guard<std::mutex> gl(g->mu); }
    g->cv.notify_all();
  }
  for (auto& [key, b] : mailboxes_) {
    { std::lock_guard<std::mutex> bl(b->mu); }
    b->cv.notify_all();
  }
}

Status run_on_ranks(HostWorld& world, const std::function<Status(int rank)>& fn, const RunOptions& opts) {
  const int n = world.size();
  const int hw = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const int threads = opts.threads_per_rank > 0 ? opts.threads_per_rank : std::max(1, hw / n);
  std::vector<Status> results(static_cast<size_t>(n));
  std::vector<char> aborted(static_cast<size_t>(n), 0);
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) {
    pool.emplace_back([&, r] {
      omp_set_num_threads(threads);  // this thread's OpenMP teams (and OpenBLAS) stay within its share
      Status st;
      try {
        st = fn(r);
      } catch (const CommAborted&) {
        aborted[size_t(r)] = 1;
        st = internal_error("aborted because another rank failed");
      } catch (const std::exception& e) {
        st = internal_error(e.what());
      }
      if (!st.is_ok()) {
        results[size_t(r)] = st;
        world.abort();
      }
    });
  }
  for (std::thread& t : pool) t.join();
  for (int r = 0; r < n; ++r)
    if (!results[size_t(r)].is_ok() && !aborted[size_t(r)])
      return Status(results[size_t(r)].code(),
                    "rank " + std::to_string(r) + ": " + results[size_t(r)].message());
  for (int r = 0; r < n; ++r)
    if (!results[size_t(r)].is_ok()) return results[size_t(r)];
  return Status::ok();
}

}  // namespace longctx

namespace longctx {

RankCommunicators RankCommunicators::host(HostWorld& hw, const ParallelLayout& layout, int rank) {
  RankCommunicators c;
  c.world = hw.communicator(layout.world_group(), rank);
  c.tp = hw.communicator(layout.tp_group(rank), rank);
  c.dcp = hw.communicator(layout.dcp_group(rank), rank);
  c.cp = hw.communicator(layout.cp_group(rank), rank);
  c.kvp = hw.communicator(layout.kvp_group(rank), rank);
  c.pp = hw.communicator(layout.pp_group(rank), rank);
  if (layout.config().ep > 1) c.ep = hw.communicator(layout.ep_group(rank), rank);
  if (layout.config().helix) c.helix = hw.communicator(layout.helix_group(rank), rank);
  return c;
}

}  // namespace longctx
