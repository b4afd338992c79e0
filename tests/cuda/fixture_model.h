// The fixture models (tests/data/hf/<model>) on the GPU, as the model tests drive them: the
// bf16 weights, the CudaModelOptions they run under, ForwardBatches over block tables the
// test hands out, and the whole-vector logit error measure.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"
#include "model/dense_weights.h"
#include "model/forward_batch.h"
#include "model/safetensors.h"
#include "model_cuda/cuda_dense_model.h"
#include "support/fixtures.h"

namespace longctx::cuda::test {

// ‖got − ref‖₂ / ‖ref‖₂ over all elements.
inline double rms_relative_error(const Tensor& got, const Tensor& ref) {
  EXPECT_EQ(got.shape(), ref.shape());
  if (got.shape() != ref.shape()) return INFINITY;
  double num = 0, den = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const double d = double(got.data<float>()[i]) - ref.data<float>()[i];
    num += d * d;
    den += double(ref.data<float>()[i]) * ref.data<float>()[i];
  }
  return std::sqrt(num / den);
}

struct Fixture {
  ModelConfig cfg;
  DenseWeights weights;
};

// The fixture's config and its weights in bf16.
inline Fixture load_fixture(const std::string& name) {
  const std::string dir = testing_support::hf_dir(name);
  auto cfg = load_model_config(dir);
  EXPECT_TRUE(cfg.is_ok()) << cfg.status().to_string();
  auto ck = Checkpoint::open(dir);
  EXPECT_TRUE(ck.is_ok()) << ck.status().to_string();
  auto w = load_dense_weights(*ck, *cfg, DType::kBF16);
  EXPECT_TRUE(w.is_ok()) << w.status().to_string();
  return {*cfg, std::move(*w)};
}

inline CudaModelOptions test_options(int64_t block_size = 16) {
  CudaModelOptions o;
  o.max_num_batched_tokens = 4096;  // the fixtures' longest prompt (2100) in one step
  o.max_num_seqs = 8;
  o.max_logit_rows = 64;
  o.block_size = block_size;
  o.max_model_len = 4096;
  o.num_kv_blocks = 4 * 4096 / block_size + 8;  // room for a few long sequences
  return o;
}

// Hands out KV blocks to sequences (block 0 is the null block) and builds ForwardBatches.
// The same calls give the same block tables (the layout tests make them on every rank).
struct Sequences {
  explicit Sequences(int64_t bs = 16) : block_size(bs) {}
  int64_t block_size;
  int32_t next_block = 1;
  std::vector<std::vector<int32_t>> tables;
  std::vector<int64_t> lens;

  int add() {
    tables.emplace_back();
    lens.push_back(0);
    return static_cast<int>(lens.size()) - 1;
  }
  // Appends seq's next `ids` to the batch (asking for the logits of `rows`, relative to ids).
  void schedule(ForwardBatch& b, int seq, const std::vector<int32_t>& ids, const std::vector<int64_t>& rows) {
    const int64_t start = lens[static_cast<size_t>(seq)], end = start + static_cast<int64_t>(ids.size());
    auto& t = tables[static_cast<size_t>(seq)];
    while (static_cast<int64_t>(t.size()) * block_size < end) t.push_back(next_block++);
    const int64_t base = b.num_tokens();
    b.add_sequence(ids.data(), static_cast<int64_t>(ids.size()), start, t, block_size, false);
    for (int64_t r : rows) b.logit_rows.push_back(base + r);
    lens[static_cast<size_t>(seq)] = end;
  }
};

}  // namespace longctx::cuda::test
