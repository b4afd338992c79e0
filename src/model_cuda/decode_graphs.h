// CUDA graphs of decode steps: one graph per (batch-size bucket, context bucket), captured
// the first time that shape runs and replayed after. A decode step of the 8B model is
// ~300 kernel launches; replaying them as one graph takes the launch gaps out, which is
// what makes batch-1 decode bound by memory rather than by the CPU (issue #7 item 4).
//
// A graph bakes in its kernels' grids and pointers: the step's inputs sit at fixed device
// addresses (the model's metadata buffer) and its grids depend only on the key, so the
// caller pads a batch up to its bucket (padded sequences: context 0, no KV write).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <map>
#include <utility>
#include <vector>

#include "core/status.h"

namespace longctx::cuda {

struct DecodeGraphKey {
  int64_t batch = 0;    // sequences (one token each), a bucket size
  int64_t context = 0;  // max context the grids are sized for, a bucket size
  bool operator<(const DecodeGraphKey& o) const {
    return batch != o.batch ? batch < o.batch : context < o.context;
  }
};

class DecodeGraphs {
 public:
  DecodeGraphs() = default;
  DecodeGraphs(const DecodeGraphs&) = delete;
  DecodeGraphs& operator=(const DecodeGraphs&) = delete;
  ~DecodeGraphs() { clear(); }

  // Batch buckets 1, 2, 4, 8, then multiples of 16 up to max_batch (vLLM's capture sizes,
  // coarser); the smallest bucket >= n, or 0 when n > max_batch.
  static int64_t batch_bucket(int64_t n, int64_t max_batch);
  // Context buckets: powers of two from 256, capped at max_context.
  static int64_t context_bucket(int64_t n, int64_t max_context);

  // Replays the graph of `key` on `stream`, capturing it first with `enqueue` (which must
  // enqueue the whole step on `stream` and nothing else).
  Status launch(const DecodeGraphKey& key, cudaStream_t stream, const std::function<Status()>& enqueue);
  size_t size() const { return graphs_.size(); }
  void clear();

 private:
  std::map<DecodeGraphKey, std::pair<cudaGraph_t, cudaGraphExec_t>> graphs_;
};

}  // namespace longctx::cuda
