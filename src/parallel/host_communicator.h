// CPU ranks: each rank is a thread of this process and the ranks share memory, so a
// collective is a rendezvous — every member publishes its buffer pointer, waits at the
// group's barrier, reads what it needs straight from the others' buffers into private
// scratch, waits again (nobody's buffer is read after this), then writes its output.
// Point-to-point messages go through per-(sender, receiver) FIFO mailboxes.
//
// Ownership: a HostWorld is shared by all rank threads of one run; each thread owns the
// HostCommunicators it asked for and is their only caller. If any rank fails,
// run_on_ranks aborts the world: every rank blocked in a collective gets CommAborted,
// so the run ends with the failing rank's error instead of a deadlock.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "core/status.h"
#include "parallel/communicator.h"
#include "parallel/parallel_layout.h"
#include "parallel/rank_communicators.h"

namespace longctx {

class HostWorld {
 public:
  explicit HostWorld(int world_size);
  ~HostWorld();
  HostWorld(const HostWorld&) = delete;
  HostWorld& operator=(const HostWorld&) = delete;

  int size() const { return size_; }
  // The communicator of `group` for member `global_rank` (which must belong to it).
  // Members of the same group (same name and ranks) share one rendezvous.
  std::unique_ptr<Communicator> communicator(const ProcessGroup& group, int global_rank);
  // Wakes every rank blocked in a collective or recv of this world; they throw CommAborted.
  void abort();
  bool aborted() const { return aborted_.load(); }

  struct GroupState;
  struct Mailbox;
  std::shared_ptr<Mailbox> mailbox(int from, int to);

 private:
  int size_;
  std::atomic<bool> aborted_{false};
  std::mutex mu_;  // guards the maps below (not the collectives)
  std::map<std::string, std::shared_ptr<GroupState>> groups_;
  std::map<std::pair<int, int>, std::shared_ptr<Mailbox>> mailboxes_;
};

struct RunOptions {
  // OpenMP/OpenBLAS threads inside each rank; 0 = hardware threads / world (at least 1).
  int threads_per_rank = 0;
};

// Runs fn(rank) on world.size() threads and joins them. Returns OK when every rank
// returned OK; otherwise the first failing rank's error (lowest rank), prefixed with
// "rank r: ". An exception escaping fn is turned into an Internal error the same way.
Status run_on_ranks(HostWorld& world, const std::function<Status(int rank)>& fn, const RunOptions& opts = {});

}  // namespace longctx
