// The routed MLP of Mixtral and Qwen3-MoE on one GPU (CudaDenseModel runs it in place of
// the dense gate_up/down on the layers model/dense_weights.h's is_moe_layer names) — the
// twin of model/moe_mlp.cpp:
//   1. moe_route: post-attention RMSNorm of the fp32 residual, fp32 router logits, softmax,
//      top-k and weights per token (ops/cuda/moe_routing.h; the CPU's route_token rules);
//   2. the k expert ids of every token come to the host (one stream synchronisation per
//      layer), which counts the rows per expert and sorts the routed rows by expert (in
//      token order within an expert) — grouped_linear takes its row offsets on the host;
//   3. the bf16 normed rows gathered in that order, gate|up grouped GEMM, SiLU·mul, down
//      grouped GEMM (bf16 out; grouped_gemm.h, kAuto: the per-expert loop or cuBLAS's
//      grouped call);
//   4. residual[t] += Σ_j w_tj · y[row of (t, j)] in fp32.
// Because of (2) a MoE step cannot be captured in a CUDA graph: MoE models run eager.
// Single rank only (no TP/PP/EP split of the experts on the GPU yet).
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "core/status.h"
#include "model/config.h"
#include "model_cuda/device_buffer.h"
#include "model_cuda/device_weights.h"
#include "ops/cuda/grouped_gemm.h"
#include "ops/cuda/linear.h"

namespace longctx::cuda {

class CudaMoeMlp {
 public:
  // Workspaces for up to max_tokens tokens a step; `blas` (the model's cuBLASLt handle and
  // workspace, borrowed) runs the per-expert loop.
  static Result<std::unique_ptr<CudaMoeMlp>> create(const ModelConfig& cfg, int64_t max_tokens,
                                                    const BlasContext& blas);
  ~CudaMoeMlp();
  CudaMoeMlp(const CudaMoeMlp&) = delete;
  CudaMoeMlp& operator=(const CudaMoeMlp&) = delete;

  // residual[t] += Σ_k w · expert(normed[t]) for t < tokens. `normed` is the bf16
  // post-attention norm of `residual` (the experts' input); the router recomputes the norm
  // in fp32 with `post_norm`. Synchronises `stream` once (the routing comes to the host).
  Status forward(const DeviceMoeWeights& w, const float* post_norm, float eps, const __nv_bfloat16* normed,
                 float* residual, int64_t tokens, cudaStream_t stream);

  GroupedGemmMethod method() const { return method_; }
  void set_method(GroupedGemmMethod m) { method_ = m; }  // tests and benchmarks

 private:
  CudaMoeMlp(const ModelConfig& cfg, int64_t max_tokens) : cfg_(cfg), max_tokens_(max_tokens) {}

  ModelConfig cfg_;
  int64_t max_tokens_ = 0;
  GroupedGemmMethod method_ = GroupedGemmMethod::kAuto;
  GroupedGemmContext gg_{};
  DeviceBuffer ws_, pointers_;
  HostStaging host_;
  struct {
    int32_t *ids, *src, *pos;
    float* weights;
    __nv_bfloat16 *x, *gate_up, *act, *y;
  } d_{};
  std::vector<int64_t> offsets_, fill_;
};

}  // namespace longctx::cuda
