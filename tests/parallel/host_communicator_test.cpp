#include "parallel/host_communicator.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <numeric>
#include <vector>

namespace longctx {
namespace {

ProcessGroup whole(int n) {
  ProcessGroup g{"all", {}};
  for (int r = 0; r < n; ++r) g.ranks.push_back(r);
  return g;
}

// A value no two (rank, index) pairs share, with a fractional part so that the order
// of a float sum matters.
float val(int rank, int64_t i) {
  return static_cast<float>(rank * 1000 + i) + 0.1f * static_cast<float>(rank + 1);
}

class CollectiveTest : public ::testing::TestWithParam<int> {};

TEST_P(CollectiveTest, AllReduceSumIsTheOrderedSumOnEveryRank) {
  const int n = GetParam();
  const int64_t count = 37;
  HostWorld world(n);
  std::vector<std::vector<float>> got(static_cast<size_t>(n));
  ASSERT_TRUE(run_on_ranks(world, [&](int r) {
                auto c = world.communicator(whole(n), r);
                std::vector<float> x(count);
                for (int64_t i = 0; i < count; ++i) x[size_t(i)] = val(r, i);
                c->all_reduce_sum(x.data(), count);
                got[size_t(r)] = x;
                return Status::ok();
              }).is_ok());
  for (int64_t i = 0; i < count; ++i) {
    float want = 0;
    for (int r = 0; r < n; ++r) want += val(r, i);
    for (int r = 0; r < n; ++r) EXPECT_EQ(got[size_t(r)][size_t(i)], want) << "rank " << r;  // bitwise
  }
}

TEST_P(CollectiveTest, AllGatherConcatenatesInRankOrder) {
  const int n = GetParam();
  const int64_t count = 5;
  HostWorld world(n);
  std::vector<std::vector<float>> got(static_cast<size_t>(n));
  ASSERT_TRUE(run_on_ranks(world, [&](int r) {
                auto c = world.communicator(whole(n), r);
                std::vector<float> x(count), y(static_cast<size_t>(count * n));
                for (int64_t i = 0; i < count; ++i) x[size_t(i)] = val(r, i);
                c->all_gather(x.data(), count, y.data());
                got[size_t(r)] = y;
                return Status::ok();
              }).is_ok());
  for (int r = 0; r < n; ++r)
    for (int j = 0; j < n; ++j)
      for (int64_t i = 0; i < count; ++i) EXPECT_EQ(got[size_t(r)][size_t(j * count + i)], val(j, i));
}

TEST_P(CollectiveTest, ReduceScatterGivesEachRankItsChunkOfTheSum) {
  const int n = GetParam();
  const int64_t count = 3;
  HostWorld world(n);
  std::vector<std::vector<float>> got(static_cast<size_t>(n));
  ASSERT_TRUE(run_on_ranks(world, [&](int r) {
                auto c = world.communicator(whole(n), r);
                std::vector<float> x(static_cast<size_t>(count * n)), y(count);
                for (int64_t i = 0; i < count * n; ++i) x[size_t(i)] = val(r, i);
                c->reduce_scatter_sum(x.data(), count, y.data());
                got[size_t(r)] = y;
                return Status::ok();
              }).is_ok());
  for (int r = 0; r < n; ++r)
    for (int64_t i = 0; i < count; ++i) {
      float want = 0;
      for (int j = 0; j < n; ++j) want += val(j, r * count + i);
      EXPECT_EQ(got[size_t(r)][size_t(i)], want);
    }
}

TEST_P(CollectiveTest, AllToAllTransposesChunks) {
  const int n = GetParam();
  const int64_t count = 4;
  HostWorld world(n);
  std::vector<std::vector<float>> got(static_cast<size_t>(n));
  ASSERT_TRUE(run_on_ranks(world, [&](int r) {
                auto c = world.communicator(whole(n), r);
                std::vector<float> x(static_cast<size_t>(count * n)), y(static_cast<size_t>(count * n));
                for (int64_t i = 0; i < count * n; ++i) x[size_t(i)] = val(r, i);
                c->all_to_all(x.data(), count, y.data());
                got[size_t(r)] = y;
                return Status::ok();
              }).is_ok());
  for (int r = 0; r < n; ++r)
    for (int j = 0; j < n; ++j)
      for (int64_t i = 0; i < count; ++i)
        EXPECT_EQ(got[size_t(r)][size_t(j * count + i)], val(j, r * count + i));
}

TEST_P(CollectiveTest, BroadcastFromEveryRoot) {
  const int n = GetParam();
  HostWorld world(n);
  std::vector<std::vector<float>> got(static_cast<size_t>(n * n));
  ASSERT_TRUE(run_on_ranks(world, [&](int r) {
                auto c = world.communicator(whole(n), r);
                for (int root = 0; root < n; ++root) {
                  std::vector<float> x = {val(r, 0), val(r, 1)};
                  c->broadcast(x.data(), 2, root);
                  got[size_t(root * n + r)] = x;
                }
                return Status::ok();
              }).is_ok());
  for (int root = 0; root < n; ++root)
    for (int r = 0; r < n; ++r)
      EXPECT_EQ(got[size_t(root * n + r)], (std::vector<float>{val(root, 0), val(root, 1)}));
}

TEST_P(CollectiveTest, SendRecvAroundTheRing) {
  const int n = GetParam();
  HostWorld world(n);
  std::vector<std::vector<float>> got(static_cast<size_t>(n));
  ASSERT_TRUE(run_on_ranks(world, [&](int r) {
                auto c = world.communicator(whole(n), r);
                // Pass a block round the whole ring (as ring attention does): after n − 1
                // hops every rank has seen every block; collect the first element of each.
                std::vector<float> block = {val(r, 0), val(r, 1), val(r, 2)};
                std::vector<float> seen = {block[0]};
                for (int hop = 1; hop < n; ++hop) {
                  c->send(block.data(), 3, (r + 1) % n);
                  c->recv(block.data(), 3, (r + n - 1) % n);
                  seen.push_back(block[0]);
                }
                got[size_t(r)] = seen;
                return Status::ok();
              }).is_ok());
  for (int r = 0; r < n; ++r)
    for (int hop = 0; hop < n; ++hop) EXPECT_EQ(got[size_t(r)][size_t(hop)], val((r - hop + n) % n, 0));
}

TEST_P(CollectiveTest, SubgroupsRunIndependently) {
  const int n = GetParam();
  HostWorld world(n);
  std::vector<float> got(static_cast<size_t>(n));
  ASSERT_TRUE(run_on_ranks(world, [&](int r) {
                ProcessGroup half{"half" + std::to_string(r % 2), {}};  // even ranks and odd ranks
                for (int q = r % 2; q < n; q += 2) half.ranks.push_back(q);
                auto c = world.communicator(half, r);
                for (int rep = 0; rep < 50; ++rep) {  // many back-to-back collectives reuse the barrier
                  float x = static_cast<float>(r);
                  c->all_reduce_sum(&x, 1);
                  got[size_t(r)] = x;
                }
                c->barrier();
                return Status::ok();
              }).is_ok());
  float even = 0, odd = 0;
  for (int r = 0; r < n; ++r) (r % 2 ? odd : even) += static_cast<float>(r);
  for (int r = 0; r < n; ++r) EXPECT_EQ(got[size_t(r)], r % 2 ? odd : even);
}

INSTANTIATE_TEST_SUITE_P(Ranks, CollectiveTest, ::testing::Values(1, 2, 3, 4, 5, 8));

TEST(RunOnRanks, AFailingRankIsReportedAndTheOthersAreReleased) {
  HostWorld world(4);
  const Status s = run_on_ranks(world, [&](int r) {
    auto c = world.communicator(whole(4), r);
    if (r == 2) return invalid_argument("bad input on this rank");
    float x = 1;
    c->all_reduce_sum(&x, 1);  // would wait forever for rank 2 without the abort
    return Status::ok();
  });
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "rank 2: bad input on this rank");
}

TEST(RunOnRanks, AnExceptionBecomesAnInternalError) {
  HostWorld world(3);
  const Status s = run_on_ranks(world, [&](int r) -> Status {
    auto c = world.communicator(whole(3), r);
    if (r == 1) throw std::runtime_error("boom");
    std::vector<float> buf(3);
    c->recv(buf.data(), 3, 1);  // never sent: released by the abort
    return Status::ok();
  });
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_EQ(s.message(), "rank 1: boom");
}

TEST(RunOnRanks, MismatchedCountsAreCaught) {
  HostWorld world(2);
  const Status s = run_on_ranks(world, [&](int r) {
    auto c = world.communicator(whole(2), r);
    std::vector<float> x(4);
    c->all_reduce_sum(x.data(), r == 0 ? 4 : 3);
    return Status::ok();
  });
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("all_reduce_sum with"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace longctx
