#include "model_cuda/decode_graphs.h"

#include <algorithm>
#include <string>

#include "model_cuda/cuda_check.h"

namespace longctx::cuda {

int64_t DecodeGraphs::batch_bucket(int64_t n, int64_t max_batch) {
  if (n < 1 || n > max_batch) return 0;
  int64_t b = 1;
  while (b < n && b < 8) b *= 2;
  if (b >= n) return std::min(b, max_batch);
  return std::min((n + 15) / 16 * 16, max_batch);
}

int64_t DecodeGraphs::context_bucket(int64_t n, int64_t max_context) {
  int64_t b = 256;
  while (b < n) b *= 2;
  return std::min(b, std::max<int64_t>(max_context, 1));
}

Status DecodeGraphs::launch(const DecodeGraphKey& key, cudaStream_t stream,
                            const std::function<Status()>& enqueue) {
  auto it = graphs_.find(key);
  if (it == graphs_.end()) {
    // Relaxed: the kernels' launch helpers query device attributes and set shared-memory
    // limits (host-side calls, not stream work) while the stream is being captured.
    LONGCTX_CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed),
                    "beginning a graph capture");
    const Status st = enqueue();
    cudaGraph_t graph = nullptr;
    const cudaError_t end = cudaStreamEndCapture(stream, &graph);
    if (!st.is_ok()) {
      if (graph) cudaGraphDestroy(graph);
      return st;
    }
    LONGCTX_CUDA_OK(end, "capturing the decode graph for batch " + std::to_string(key.batch));
    cudaGraphExec_t exec = nullptr;
    const cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
    if (inst != cudaSuccess) {
      cudaGraphDestroy(graph);
      return cuda_status(inst, "instantiating the decode graph");
    }
    it = graphs_.emplace(key, std::make_pair(graph, exec)).first;
  }
  LONGCTX_CUDA_OK(cudaGraphLaunch(it->second.second, stream), "replaying a decode graph");
  return Status::ok();
}

void DecodeGraphs::clear() {
  for (auto& [key, g] : graphs_) {
    cudaGraphExecDestroy(g.second);
    cudaGraphDestroy(g.first);
  }
  graphs_.clear();
}

}  // namespace longctx::cuda
