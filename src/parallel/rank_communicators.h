// The communicators one rank needs, one per process group of its ParallelLayout.
// Owned by the rank's thread (host) or device worker (NCCL); never shared.
#pragma once

#include <memory>

#include "parallel/communicator.h"
#include "parallel/parallel_layout.h"

namespace longctx {

class HostWorld;

struct RankCommunicators {
  std::unique_ptr<Communicator> world, tp, dcp, cp, kvp, pp;
  std::unique_ptr<Communicator> ep;  // the EP group (expert dispatch); null unless ep > 1
  std::unique_ptr<Communicator> helix;  // the kvp·tp ranks of a stage; null unless the layout is Helix

  // Host ranks: every group of `rank` in `layout`, from the shared world.
  static RankCommunicators host(HostWorld& hw, const ParallelLayout& layout, int rank);
};

}  // namespace longctx
