// CudaDenseModel: the dense Llama family (Llama, Qwen2, Qwen3) on one GPU — the CUDA twin of
// DenseModel. It owns the device weights, the paged KV cache (sized by the memory plan),
// the activation workspaces for max_num_batched_tokens, and the decode graphs.
//
// One call runs a ForwardBatch: every sequence's new tokens at once (whole prompts,
// prefill chunks over a cached prefix, single decode tokens — one path, STYLE.md §13);
// block ids in the batch index this model's KV cache (block 0 is the null block).
// Numerics: bf16 weights and GEMM inputs, fp32 accumulation, an fp32 residual stream (as
// the CPU backend), bf16 activations between the ops, fp32 logits.
//
// Ranks (create with a CudaRankSpec): one rank of a ParallelLayout — TP, PP, CP, DCP and KVP
// (not CP with DCP/KVP, Helix, EP yet) — the semantics of ShardedDenseModel (model/sharded_dense_model.h).
// The rank holds its q/k/v heads (kv heads replicated when tp > Hkv), their o_proj columns, its gate/up rows
// and down columns, its stage's layers (and their KV cache only); o_proj's and down's partial products are
// summed over the TP group (fp32 all-reduce of the residual: rank 0 adds its product and the bias to the
// residual, the others their product alone, so the sum is residual + Σ partials); the fp32 residual goes
// stage to stage by send/recv; the last stage runs the LM head, split over the vocabulary and all-gathered
// when tp divides it. DCP and KVP: the rank keeps only its tokens' K/V (rank_kv_placement.h says where, in
// the engine's global block ids), attends over them and exchanges the partial states with its DCP and KVP
// groups (attention_exchange.h). CP: the rank runs its share of each step's tokens, keeps the K/V of
// positions p mod cp and attends with the group (context_parallel.h). Every rank runs the same ForwardBatch
// in lockstep; only the last stage returns logits or tokens (the others return empty results). Multi-rank
// steps run eager (no CUDA graphs: the device-staged communicator synchronizes on the host).
//
// MoE (Mixtral, Qwen3-MoE): the routed layers run CudaMoeMlp (cuda_moe_mlp.h) — one GPU, eager
// steps (the routing comes to the host each layer), no decode graphs.
//
// Not thread-safe: one thread owns the model and its stream (STYLE.md §18).
#pragma once

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "model/config.h"
#include "model/dense_weights.h"
#include "model/forward_batch.h"
#include "model_cuda/attention_exchange.h"
#include "model_cuda/context_parallel.h"
#include "model_cuda/cuda_moe_mlp.h"
#include "model_cuda/decode_graphs.h"
#include "model_cuda/device_buffer.h"
#include "model_cuda/device_kv_cache.h"
#include "model_cuda/device_weights.h"
#include "model_cuda/memory_plan.h"
#include "model_cuda/rank_kv_placement.h"
#include "ops/cuda/linear.h"
#include "ops/cuda/sampling.h"
#include "parallel/parallel_layout.h"
#include "parallel/rank_communicators.h"

namespace longctx::cuda {

struct CudaModelOptions {
  int64_t max_num_batched_tokens = 8192;  // tokens of one step: sizes the activations
  int64_t max_num_seqs = 256;             // sequences of one step; decode graphs up to this batch
  int64_t max_logit_rows = 0;             // logit rows of one step; 0 = max_num_seqs
  int64_t block_size = 16;
  int64_t max_model_len = 0;            // 0 = the config's max_position_embeddings
  double gpu_memory_utilization = 0.9;  // fraction of the device's memory this model may use
  int64_t num_kv_blocks = 0;            // > 0: exactly this pool (tests), no memory plan
  bool cuda_graphs = true;              // replay decode steps as CUDA graphs
  // The stream the model runs on (borrowed); null = one of its own. A rank's model runs on
  // the stream its communicators are ordered on, so a multi-rank model needs it.
  cudaStream_t stream = nullptr;
};

// One rank of a layout. The communicators (borrowed, outliving the model) are ordered on
// CudaModelOptions::stream: parallel_nccl/device_staged_communicator.h (ranks sharing a
// GPU) or NCCL joined to it (parallel_nccl/stream_joined_communicator.h).
struct CudaRankSpec {
  ParallelLayout layout;
  int rank = 0;
  RankCommunicators* comms = nullptr;
};

class CudaDenseModel {
 public:
  // Host weights (e.g. load_dense_weights with --dtype bf16) copied to the GPU.
  static Result<std::unique_ptr<CudaDenseModel>> create(const ModelConfig& cfg, const DenseWeights& w,
                                                        const CudaModelOptions& opts);
  // This rank's share of the host weights (the full model's), under spec.layout (built with
  // ShardedDenseModel::layout_dims(cfg)); TP, PP, CP, DCP and KVP; other splits are refused.
  static Result<std::unique_ptr<CudaDenseModel>> create(const ModelConfig& cfg, const DenseWeights& w,
                                                        const CudaModelOptions& opts,
                                                        const CudaRankSpec& spec);
  // Random weights made on the GPU (benchmarks of real shapes without a checkpoint).
  static Result<std::unique_ptr<CudaDenseModel>> create_random(const ModelConfig& cfg, uint64_t seed,
                                                               const CudaModelOptions& opts);
  ~CudaDenseModel();
  CudaDenseModel(const CudaDenseModel&) = delete;
  CudaDenseModel& operator=(const CudaDenseModel&) = delete;

  const ModelConfig& config() const { return cfg_; }
  const CudaModelOptions& options() const { return opts_; }
  const MemoryPlan& memory_plan() const { return plan_; }
  int64_t num_kv_blocks() const { return kv_.shape().num_blocks; }
  // Tokens per block of the engine's block tables (a DCP rank's own blocks hold fewer).
  int64_t block_size() const { return opts_.block_size; }
  int64_t max_model_len() const { return max_model_len_; }
  size_t num_graphs() const { return graphs_.size(); }
  cudaStream_t stream() const { return stream_; }
  const ParallelLayout& layout() const { return spec_.layout; }
  int rank() const { return spec_.rank; }
  const RankShape& rank_shape() const { return rs_; }
  // The last pipeline stage returns logits and tokens; the others empty results.
  bool returns_logits() const { return rs_.head; }

  // fp32 logits [batch.logit_rows.size(), vocab] on the host. use_graphs = false forces
  // the eager path (tests compare the two).
  Result<Tensor> forward(const ForwardBatch& batch, bool use_graphs = true);
  // Greedy sampling on the GPU: the argmax token of each logit row (only ids come back).
  Result<std::vector<int32_t>> forward_greedy(const ForwardBatch& batch, bool use_graphs = true);

  // Both at once, for the engine's mixed steps: a token for every logit row, and the fp32
  // logits of the rows listed in `host_rows` (indices into batch.logit_rows, ascending) —
  // rows the host samples (penalties, logprobs) or scores (prompt logprobs). Only those
  // rows cross PCIe, one copy per contiguous run. Without `sampling` the tokens are the
  // argmax; with it (one SamplingRow per logit row; needs can_sample()) cuda::sample draws
  // them and the drawn ids' logprobs come back too.
  struct RowsOut {
    std::vector<int32_t> tokens;  // [batch.logit_rows.size()]
    std::vector<float> logprobs;  // [batch.logit_rows.size()] with `sampling`, else empty
    Tensor logits;                // f32 [host_rows.size(), vocab]
  };
  Result<RowsOut> forward_rows(const ForwardBatch& batch, const std::vector<int64_t>& host_rows,
                               const std::vector<SamplingRow>* sampling = nullptr, bool use_graphs = true);
  // Whether cuda::sample runs in this build (probed once at creation: a stub answers
  // cudaErrorNotSupported); greedy sampling needs only argmax and always works.
  bool can_sample() const { return can_sample_; }

  // Benchmarks: fills the whole KV cache with random bf16 values, so decode can be timed
  // over long contexts that were never prefilled (attention then reads real numbers).
  Status randomize_kv_cache(uint64_t seed);

 private:
  // What the kernels' grids are sized by: fixed per graph key.
  struct StepShape {
    int64_t tokens = 0, seqs = 0, logit_rows = 0, max_num_q = 0, max_context_len = 0, table_stride = 0;
  };
  CudaDenseModel(const ModelConfig& cfg, const CudaModelOptions& opts, const CudaRankSpec& spec,
                 const RankShape& rs);
  Status init(DeviceWeights w, size_t used_at_start);
  Status allocate_workspaces();
  Status probe_sampling();
  Status validate(const ForwardBatch& b) const;
  // Copies the batch's metadata (padded to `shape`) into the fixed device buffer.
  // causal_lens: per token (PagedAttentionParams::causal_lens), or null.
  Status stage(const ForwardBatch& b, const StepShape& shape, const std::vector<int32_t>* causal_lens);
  Status enqueue_step(const StepShape& s);
  Status run(const ForwardBatch& b, bool use_graphs);

  ModelConfig cfg_;
  CudaModelOptions opts_;
  CudaRankSpec spec_;  // a single-rank layout for the whole model
  RankShape rs_;
  bool owns_stream_ = false;
  int64_t max_model_len_ = 0, max_blocks_per_seq_ = 0, max_tokens_ = 0, max_rows_ = 0;
  MemoryPlan plan_;
  DeviceWeights w_;
  DeviceKVCache kv_;
  RankKVPlacement placement_;   // which tokens' K/V this rank keeps (all of them unless DCP/KVP)
  AttentionExchange exchange_;  // DCP/KVP partial-state exchange; inactive otherwise
  ContextParallelStep cp_;      // CP: the token split, K/V placement and attention; inactive otherwise
  ForwardBatch local_;          // the step as this rank runs it (placement_.localize)
  std::vector<int32_t> causal_lens_;
  cudaStream_t stream_ = nullptr;
  BlasContext blas_{};
  DeviceBuffer blas_ws_, attn_ws_, act_, meta_, inv_freq_;
  HostStaging meta_host_, out_host_, sampling_host_;
  // cuda::sample's inputs and outputs: max_logit_rows SamplingRows, logprobs, its workspace.
  DeviceBuffer sampling_params_, sampled_logprobs_, sample_ws_;
  bool can_sample_ = false;
  // Offsets into act_ and meta_ (fixed: graphs bake the addresses in).
  struct {
    float* residual;
    __nv_bfloat16 *normed, *qkv, *attn, *gate_up, *mlp_act, *final_normed;
    float* logits;
    int32_t* argmax;
    float *head_part, *head_all;  // vocab-split LM head: this rank's columns, every rank's
  } a_{};
  struct {
    size_t ids, positions, slots, q_begin, context_lens, logit_rows, block_tables, causal_lens, end;
  } m_{};
  DecodeGraphs graphs_;
  std::unique_ptr<CudaMoeMlp> moe_;  // Mixtral / Qwen3-MoE routed layers; null for dense models
};

}  // namespace longctx::cuda
