// The transformers reference fixtures (tests/data/hf/<model>/golden.safetensors), read
// the same way by every test that compares against them.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/tensor.h"
#include "model/safetensors.h"

namespace longctx::testing_support {

inline std::string hf_dir(const std::string& model) { return std::string(LONGCTX_TEST_DATA_DIR) + "/hf/" + model; }

struct Golden {
  std::vector<int32_t> ids;        // the prompt
  std::vector<int64_t> logit_pos;  // positions whose logits are given
  Tensor logits;                   // f32 [P, vocab], float64 forward of transformers
  std::vector<int32_t> greedy;     // transformers' greedy continuation
};

inline std::vector<int32_t> to_i32(const Tensor& t) {
  Tensor c = t.to(DType::kI32);
  return std::vector<int32_t>(c.data<int32_t>(), c.data<int32_t>() + c.numel());
}

inline std::vector<Golden> load_goldens(const std::string& model) {
  auto ck = Checkpoint::open(hf_dir(model) + "/golden.safetensors");
  EXPECT_TRUE(ck.is_ok()) << ck.status().to_string();
  std::vector<Golden> out;
  if (!ck.is_ok()) return out;
  for (int i = 0; ck->has("prompt_" + std::to_string(i) + "_ids"); ++i) {
    const std::string p = "prompt_" + std::to_string(i) + "_";
    Golden g;
    g.ids = to_i32(ck->get(p + "ids").value());
    Tensor pos = ck->get(p + "logit_pos").value().to(DType::kI64);
    g.logit_pos.assign(pos.data<int64_t>(), pos.data<int64_t>() + pos.numel());
    g.logits = ck->get(p + "logits").value().to(DType::kF32);
    g.greedy = to_i32(ck->get(p + "greedy").value());
    out.push_back(std::move(g));
  }
  return out;
}

// max|got − ref| / max|ref| (the fixtures' tolerance measure); shapes must agree.
inline double relative_error(const Tensor& got, const Tensor& ref) {
  EXPECT_EQ(got.shape(), ref.shape());
  if (got.shape() != ref.shape()) return INFINITY;
  double max_diff = 0, max_ref = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    max_diff = std::max(max_diff, std::fabs(double(got.data<float>()[i]) - ref.data<float>()[i]));
    max_ref = std::max(max_ref, std::fabs(double(ref.data<float>()[i])));
  }
  return max_diff / max_ref;
}

}  // namespace longctx::testing_support
