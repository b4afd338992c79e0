// longctx_nccl_check: the NCCL Communicator on real GPUs, through the same calls the
// model makes. Two modes:
//   threads [--gpus N]           one process, one thread per GPU (a node)
//   node --nnodes N --node-rank R --master-addr A --master-port P [--gpu G]
//                                one process per node; node 0 makes the NCCL id and
//                                hands it out through the TCP rendezvous
// Every collective is checked against values computed on the host (small integers, so
// sums are exact in fp32 whatever NCCL's reduction order), then the layout groups of a
// ParallelLayout are carved out of the world and checked the same way. Prints one
// "PASS ..." or "FAIL ..." line per rank; exit code 0 only when every check passed.
// Run by scripts/device/nccl_check.sh.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "parallel/parallel_layout.h"
#include "parallel/tcp_rendezvous.h"
#include "parallel_nccl/nccl_communicator.h"

namespace longctx {
namespace {

struct DeviceBuf {
  float* p = nullptr;
  explicit DeviceBuf(size_t n) { cudaMalloc(&p, n * sizeof(float)); }
  ~DeviceBuf() { cudaFree(p); }
};

void upload(float* d, const std::vector<float>& h) {
  cudaMemcpy(d, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice);
}
std::vector<float> download(const float* d, size_t n) {
  std::vector<float> h(n);
  cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost);
  return h;
}

// Runs every collective of `c` once; returns "" or what went wrong.
std::string check_collectives(NcclCommunicator& c) {
  const int n = c.size(), r = c.rank();
  const size_t count = 1000;
  DeviceBuf a(count * static_cast<size_t>(n)), b(count * static_cast<size_t>(n));
  std::vector<float> h(count * static_cast<size_t>(n));
  const auto expect = [&](const std::vector<float>& got, const std::vector<float>& want, const char* what) {
    for (size_t i = 0; i < want.size(); ++i)
      if (got[i] != want[i])
        return std::string(what) + " on " + c.name() + ": element " + std::to_string(i) + " is " +
               std::to_string(got[i]) + ", expected " + std::to_string(want[i]);
    return std::string();
  };
  std::string err;

  for (size_t i = 0; i < count; ++i) h[i] = static_cast<float>(r * 1000 + static_cast<int>(i));
  upload(a.p, std::vector<float>(h.begin(), h.begin() + count));
  c.all_reduce_sum(a.p, count);
  c.synchronize();
  std::vector<float> want(count);
  for (size_t i = 0; i < count; ++i) {
    want[i] = 0;
    for (int q = 0; q < n; ++q) want[i] += static_cast<float>(q * 1000 + static_cast<int>(i));
  }
  if (!(err = expect(download(a.p, count), want, "all_reduce_sum")).empty()) return err;

  upload(a.p, std::vector<float>(h.begin(), h.begin() + count));
  c.all_gather(a.p, count, b.p);
  c.synchronize();
  want.assign(count * n, 0);
  for (int q = 0; q < n; ++q)
    for (size_t i = 0; i < count; ++i) want[q * count + i] = static_cast<float>(q * 1000 + static_cast<int>(i));
  if (!(err = expect(download(b.p, count * n), want, "all_gather")).empty()) return err;

  // reduce_scatter: member q's send[j·count + i] = q·100 + j·10 + i % 7.
  for (int j = 0; j < n; ++j)
    for (size_t i = 0; i < count; ++i) h[j * count + i] = static_cast<float>(r * 100 + j * 10 + int(i % 7));
  upload(a.p, h);
  c.reduce_scatter_sum(a.p, count, b.p);
  c.synchronize();
  want.assign(count, 0);
  for (size_t i = 0; i < count; ++i)
    for (int q = 0; q < n; ++q) want[i] += static_cast<float>(q * 100 + r * 10 + int(i % 7));
  if (!(err = expect(download(b.p, count), want, "reduce_scatter_sum")).empty()) return err;

  // all_to_all: member q's send[j·count + i] = q·1000 + j·100 + i % 50.
  for (int j = 0; j < n; ++j)
    for (size_t i = 0; i < count; ++i) h[j * count + i] = static_cast<float>(r * 1000 + j * 100 + int(i % 50));
  upload(a.p, h);
  c.all_to_all(a.p, count, b.p);
  c.synchronize();
  want.assign(count * n, 0);
  for (int j = 0; j < n; ++j)
    for (size_t i = 0; i < count; ++i) want[j * count + i] = static_cast<float>(j * 1000 + r * 100 + int(i % 50));
  if (!(err = expect(download(b.p, count * n), want, "all_to_all")).empty()) return err;

  const int root = n - 1;
  for (size_t i = 0; i < count; ++i) h[i] = static_cast<float>(r == root ? 7 * static_cast<int>(i) : -1);
  upload(a.p, std::vector<float>(h.begin(), h.begin() + count));
  c.broadcast(a.p, count, root);
  c.synchronize();
  for (size_t i = 0; i < count; ++i) want[i] = static_cast<float>(7 * static_cast<int>(i));
  want.resize(count);
  if (!(err = expect(download(a.p, count), want, "broadcast")).empty()) return err;

  // A ring hop (what CP's ring attention does): send to the next, receive from the previous.
  if (n > 1) {
    for (size_t i = 0; i < count; ++i) h[i] = static_cast<float>(r * 10000 + static_cast<int>(i));
    upload(a.p, std::vector<float>(h.begin(), h.begin() + count));
    c.sendrecv(a.p, count, (r + 1) % n, b.p, count, (r + n - 1) % n);
    c.synchronize();
    for (size_t i = 0; i < count; ++i) want[i] = static_cast<float>(((r + n - 1) % n) * 10000 + static_cast<int>(i));
    if (!(err = expect(download(b.p, count), want, "sendrecv ring")).empty()) return err;
    // A pipeline hop (PP): stage r sends to r + 1 with plain send/recv.
    if (r + 1 < n) c.send(a.p, count, r + 1);
    if (r > 0) {
      c.recv(b.p, count, r - 1);
      c.synchronize();
      for (size_t i = 0; i < count; ++i) want[i] = static_cast<float>((r - 1) * 10000 + static_cast<int>(i));
      if (!(err = expect(download(b.p, count), want, "send/recv")).empty()) return err;
    }
    c.synchronize();
  }
  c.barrier();
  return "";
}

// The world's checks, then every layout group carved out of it.
std::string check_rank(NcclCommunicator& world, const std::vector<ParallelConfig>& layouts) {
  std::string err = check_collectives(world);
  if (!err.empty()) return err;
  for (const ParallelConfig& pc : layouts) {
    // One kv head (MLA-like), so every dcp dividing tp is a valid layout.
    auto layout = ParallelLayout::create(pc, LayoutModelDims{32, 1, 4});
    if (!layout.is_ok()) return layout.status().message();
    auto groups = nccl_rank_communicators(world, *layout, world.rank());
    if (!groups.is_ok()) return groups.status().message();
    for (Communicator* g : {groups->tp.get(), groups->dcp.get(), groups->cp.get(), groups->kvp.get(),
                            groups->pp.get(), groups->ep.get(), groups->helix.get()}) {
      if (g == nullptr) continue;  // ep / helix: only in layouts that have them
      err = check_collectives(static_cast<NcclCommunicator&>(*g));
      if (!err.empty()) return layout->to_string() + ": " + err;
    }
  }
  return "";
}

// The layouts of `world` ranks that the model tests use: each kind of group split out.
std::vector<ParallelConfig> layouts_for(int world) {
  std::vector<ParallelConfig> out;
  const auto add = [&](int tp, int dcp, int cp, int kvp, int pp, int ep = 1, bool helix = false) {
    ParallelConfig c;
    c.tp = tp, c.dcp = dcp, c.cp = cp, c.kvp = kvp, c.pp = pp, c.ep = ep, c.helix = helix;
    c.kvp_shard_tokens = 64;
    c.world_size = world;
    if (tp * cp * kvp * pp == world) out.push_back(c);
  };
  add(world, 1, 1, 1, 1);
  if (world % 2 == 0) add(world, 2, 1, 1, 1);  // tp with a dcp subgroup of 2
  add(1, 1, world, 1, 1);
  add(1, 1, 1, world, 1);
  add(1, 1, 1, 1, world);
  add(world, 1, 1, 1, 1, /*ep=*/world);
  add(1, 1, 1, world, 1, 1, /*helix=*/true);
  if (world == 4) {
    add(2, 2, 2, 1, 1);
    add(2, 1, 1, 1, 2);
  }
  return out;
}

int run_threads(int gpus) {
  auto id = NcclCommunicator::unique_id();
  if (!id.is_ok()) {
    std::printf("FAIL %s\n", id.status().message().c_str());
    return 1;
  }
  std::vector<std::string> errs(static_cast<size_t>(gpus));
  std::vector<std::thread> threads;
  for (int g = 0; g < gpus; ++g)
    threads.emplace_back([&, g] {
      cudaSetDevice(g);
      auto world = NcclCommunicator::create("world", gpus, g, *id);
      if (!world.is_ok()) {
        errs[size_t(g)] = world.status().message();
        return;
      }
      try {
        errs[size_t(g)] = check_rank(**world, layouts_for(gpus));
      } catch (const std::exception& e) {
        errs[size_t(g)] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  int failed = 0;
  for (int g = 0; g < gpus; ++g) {
    if (errs[size_t(g)].empty()) {
      std::printf("PASS threads rank %d of %d\n", g, gpus);
    } else {
      std::printf("FAIL threads rank %d of %d: %s\n", g, gpus, errs[size_t(g)].c_str());
      ++failed;
    }
  }
  return failed ? 1 : 0;
}

int run_node(const RendezvousConfig& rc, int gpu) {
  cudaSetDevice(gpu);
  ncclUniqueId id;
  static_assert(sizeof(ncclUniqueId) == sizeof(RendezvousPayload), "the payload carries one NCCL id");
  if (rc.node_rank == 0) {
    auto made = NcclCommunicator::unique_id();
    auto server = RendezvousServer::listen(rc);
    if (!made.is_ok() || !server.is_ok()) {
      std::printf("FAIL node 0: %s\n", (made.is_ok() ? server.status() : made.status()).message().c_str());
      return 1;
    }
    id = *made;
    RendezvousPayload p;
    std::memcpy(p.data(), &id, p.size());
    const Status s = server->serve(p);
    if (!s.is_ok()) {
      std::printf("FAIL node 0: %s\n", s.message().c_str());
      return 1;
    }
    std::printf("node 0: rendezvous done, %d stray connection(s) rejected\n", server->rejected());
  } else {
    auto p = rendezvous_join(rc);
    if (!p.is_ok()) {
      std::printf("FAIL node %d: %s\n", rc.node_rank, p.status().message().c_str());
      return 1;
    }
    std::memcpy(&id, p->data(), sizeof id);
  }
  auto world = NcclCommunicator::create("world", rc.nnodes, rc.node_rank, id);
  if (!world.is_ok()) {
    std::printf("FAIL node %d: %s\n", rc.node_rank, world.status().message().c_str());
    return 1;
  }
  std::string err;
  try {
    err = check_rank(**world, layouts_for(rc.nnodes));
  } catch (const std::exception& e) {
    err = e.what();
  }
  if (!err.empty()) {
    std::printf("FAIL node %d of %d: %s\n", rc.node_rank, rc.nnodes, err.c_str());
    return 1;
  }
  std::printf("PASS node %d of %d\n", rc.node_rank, rc.nnodes);
  return 0;
}

}  // namespace
}  // namespace longctx

int main(int argc, char** argv) {
  using namespace longctx;
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s threads [--gpus N] | node --nnodes N --node-rank R --master-addr A "
                         "--master-port P [--gpu G]\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  RendezvousConfig rc;
  if (const char* s = std::getenv("LONGCTX_RENDEZVOUS_SECRET")) rc.secret = s;
  rc.timeout_s = 60;
  int gpus = 0, gpu = -1;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--gpus") gpus = std::atoi(v.c_str());
    else if (k == "--gpu") gpu = std::atoi(v.c_str());
    else if (k == "--nnodes") rc.nnodes = std::atoi(v.c_str());
    else if (k == "--node-rank") rc.node_rank = std::atoi(v.c_str());
    else if (k == "--master-addr") rc.master_addr = v;
    else if (k == "--master-port") rc.master_port = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  if (mode == "threads") {
    if (gpus == 0 && cudaGetDeviceCount(&gpus) != cudaSuccess) return 1;
    return run_threads(gpus);
  }
  if (mode == "node") {
    const Status s = validate(rc);
    if (!s.is_ok()) {
      std::fprintf(stderr, "%s\n", s.message().c_str());
      return 2;
    }
    return run_node(rc, gpu >= 0 ? gpu : rc.node_rank);
  }
  std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
  return 2;
}
