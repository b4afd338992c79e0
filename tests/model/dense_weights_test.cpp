// A checkpoint that does not match its config fails with an error naming the tensor.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "model/dense_model.h"
#include "model/safetensors.h"
#include "model/safetensors_writer.h"

namespace longctx {
namespace {

namespace fs = std::filesystem;
const fs::path kLlama = fs::path(LONGCTX_TEST_DATA_DIR) / "hf" / "llama_gqa";

// Copies the llama fixture into a temp dir, dropping `drop` and reshaping `reshape`.
fs::path altered_copy(const std::string& tag, const std::string& drop, const std::string& reshape) {
  const fs::path dir = fs::temp_directory_path() / ("longctx_weights_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(kLlama / "config.json", dir / "config.json");
  auto src = Checkpoint::open(kLlama).value();
  std::map<std::string, Tensor> tensors;
  for (const auto& name : src.names()) {
    if (name == drop) continue;
    Tensor t = src.get(name).value();
    tensors[name] = name == reshape ? t.slice(0, 0, t.size(0) / 2) : t;
  }
  Status st = write_safetensors(dir / "model.safetensors", tensors);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  return dir;
}

TEST(DenseWeights, MissingTensorIsNamed) {
  const fs::path dir = altered_copy("missing", "model.layers.1.mlp.up_proj.weight", "");
  auto m = DenseModel::load(dir);
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
  EXPECT_NE(m.status().message().find("model.layers.1.mlp.up_proj.weight"), std::string::npos)
      << m.status().message();
  fs::remove_all(dir);
}

TEST(DenseWeights, WrongShapeIsNamedWithBothShapes) {
  const fs::path dir = altered_copy("shape", "", "model.layers.0.self_attn.q_proj.weight");
  auto m = DenseModel::load(dir);
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
  const std::string& msg = m.status().message();
  EXPECT_NE(msg.find("model.layers.0.self_attn.q_proj.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[32, 64]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[64, 64]"), std::string::npos) << msg;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace longctx
