#include "model/safetensors.h"
#include "model/safetensors_writer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "model/config.h"

namespace longctx {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kLlama = fs::path(LONGCTX_TEST_DATA_DIR) / "hf" / "llama_gqa";

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() /
            ("longctx_safetensors_test_" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(n >> (8 * i));
  return s;
}

// A raw file: length prefix, the given header text, then `data_bytes` zero bytes.
void write_raw(const fs::path& p, const std::string& header, size_t data_bytes) {
  write_bytes(p, le64(header.size()) + header + std::string(data_bytes, '\0'));
}

Status open_status(const fs::path& p) { return Checkpoint::open(p).status(); }

void expect_data_loss(const fs::path& p, const std::string& fragment) {
  Status st = open_status(p);
  ASSERT_EQ(st.code(), StatusCode::kDataLoss) << st.to_string();
  EXPECT_NE(st.message().find(p.string()), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(fragment), std::string::npos) << st.message();
}

TEST(SafetensorsTest, ReadsLlamaFixture) {
  auto cfg = load_model_config(kLlama);
  ASSERT_TRUE(cfg.is_ok()) << cfg.status().to_string();
  const ModelConfig& c = *cfg;
  auto ck = Checkpoint::open(kLlama);
  ASSERT_TRUE(ck.is_ok()) << ck.status().to_string();

  EXPECT_EQ(ck->names().size(), 21u);  // lm_head, embed, norm + 9 per layer × 2
  EXPECT_TRUE(ck->has("model.embed_tokens.weight"));
  EXPECT_EQ(ck->metadata().at("format"), "pt");
  EXPECT_EQ(ck->describe(), (kLlama / "model.safetensors").string());

  const int64_t h = c.hidden_size, d = c.head_dim;
  auto expect_shape = [&](const std::string& name, const Shape& shape) {
    auto t = ck->get(name, shape);
    ASSERT_TRUE(t.is_ok()) << t.status().to_string();
    EXPECT_EQ(t->dtype(), DType::kF32);
    EXPECT_TRUE(t->is_contiguous());
  };
  expect_shape("model.embed_tokens.weight", {c.vocab_size, h});
  expect_shape("lm_head.weight", {c.vocab_size, h});
  expect_shape("model.norm.weight", {h});
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    expect_shape(p + "self_attn.q_proj.weight", {c.num_heads * d, h});
    expect_shape(p + "self_attn.k_proj.weight", {c.num_kv_heads * d, h});
    expect_shape(p + "self_attn.v_proj.weight", {c.num_kv_heads * d, h});
    expect_shape(p + "self_attn.o_proj.weight", {h, c.num_heads * d});
    expect_shape(p + "mlp.gate_proj.weight", {c.intermediate_size, h});
    expect_shape(p + "mlp.down_proj.weight", {h, c.intermediate_size});
    expect_shape(p + "input_layernorm.weight", {h});
  }

  // The view's bytes are the file's bytes at 8 + N + begin, read independently here.
  const std::string raw = read_bytes(kLlama / "model.safetensors");
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  const json header = json::parse(raw.substr(8, n));
  const auto begin = header["model.norm.weight"]["data_offsets"][0].get<size_t>();
  Tensor norm = ck->get("model.norm.weight").value();
  EXPECT_EQ(std::memcmp(norm.raw(), raw.data() + 8 + n + begin, norm.nbytes()), 0);

  // A single file path works too.
  EXPECT_TRUE(Checkpoint::open(kLlama / "model.safetensors").is_ok());
}

TEST(SafetensorsTest, ViewOutlivesCheckpoint) {
  Tensor t;
  std::vector<float> expected;
  {
    auto ck = Checkpoint::open(kLlama);
    ASSERT_TRUE(ck.is_ok());
    t = ck->get("model.norm.weight").value();
    expected.assign(t.data<float>(), t.data<float>() + t.numel());
  }
  ASSERT_EQ(t.numel(), 64);
  EXPECT_EQ(std::memcmp(t.data<float>(), expected.data(), 64 * sizeof(float)), 0);  // still mapped
}

TEST(SafetensorsTest, RoundTripDtypes) {
  TempDir dir;
  std::vector<float> vals(24);
  for (size_t i = 0; i < vals.size(); ++i)
    vals[i] = 0.25f * static_cast<float>(i) - 3.0f;  // exact in bf16/f16
  Tensor f32 = Tensor::from_vector(vals, {2, 3, 4});
  Tensor i64 = Tensor::empty({5}, DType::kI64);
  for (int64_t i = 0; i < 5; ++i) i64.data<int64_t>()[i] = (int64_t{1} << 40) * (i - 2);
  std::map<std::string, Tensor> tensors = {
      {"w.f32", f32},
      {"w.bf16", f32.to(DType::kBF16)},
      {"w.f16", f32.to(DType::kF16)},
      {"w.i64", i64},
      {"w.i32", Tensor::from_vector(std::vector<int32_t>{7, -8, 9}, {3})},
      {"w.transposed", f32.view({6, 4}).transpose(0, 1)},  // non-contiguous: written contiguous
      {"w.empty", Tensor::empty({0, 4}, DType::kF32)},
  };
  const fs::path file = dir / "model.safetensors";
  ASSERT_TRUE(write_safetensors(file, tensors, {{"format", "pt"}}).is_ok());
  EXPECT_FALSE(fs::exists(dir / "model.safetensors.tmp"));

  // Header padded with spaces to a multiple of 8; data laid out in name order.
  const std::string raw = read_bytes(file);
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  const json header = json::parse(raw.substr(8, n));
  size_t expected_begin = 0;
  for (const auto& [name, t] : tensors) {
    EXPECT_EQ(header[name]["data_offsets"][0].get<size_t>(), expected_begin) << name;
    expected_begin += t.nbytes();
  }
  EXPECT_EQ(raw.size(), 8 + n + expected_begin);

  auto ck = Checkpoint::open(dir.path());
  ASSERT_TRUE(ck.is_ok()) << ck.status().to_string();
  EXPECT_EQ(ck->metadata().at("format"), "pt");
  EXPECT_EQ(ck->names().size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    Tensor got = ck->get(name, t.shape()).value();
    EXPECT_EQ(got.dtype(), t.dtype()) << name;
    const Tensor want = t.contiguous();
    EXPECT_EQ(std::memcmp(got.raw(), want.raw(), want.nbytes()), 0) << name;
  }
  Tensor back = ck->get("w.bf16").value().to(DType::kF32);
  for (size_t i = 0; i < vals.size(); ++i) EXPECT_EQ(back.data<float>()[i], vals[i]);
  EXPECT_EQ(ck->get("w.i64").value().data<int64_t>()[4], int64_t{2} << 40);
  Tensor tr = ck->get("w.transposed").value();
  EXPECT_EQ(tr.shape(), (Shape{4, 6}));
  EXPECT_EQ(tr.data<float>()[1], vals[4]);  // [0][1] of the transpose is [1][0] of the 6×4 view
}

TEST(SafetensorsTest, ShardedIndex) {
  TempDir dir;
  Tensor a = Tensor::from_vector(std::vector<float>{1, 2, 3, 4}, {2, 2});
  Tensor b = Tensor::from_vector(std::vector<float>{5, 6, 7}, {3});
  Tensor c = Tensor::from_vector(std::vector<float>{8}, {1});
  ASSERT_TRUE(write_safetensors(dir / "model-00001-of-00002.safetensors", {{"a", a}, {"b", b}}).is_ok());
  ASSERT_TRUE(write_safetensors(dir / "model-00002-of-00002.safetensors", {{"c", c}}).is_ok());
  json index = {{"metadata", {{"total_size", 32}}},
                {"weight_map",
                 {{"a", "model-00001-of-00002.safetensors"},
                  {"b", "model-00001-of-00002.safetensors"},
                  {"c", "model-00002-of-00002.safetensors"}}}};
  write_bytes(dir / "model.safetensors.index.json", index.dump());

  auto ck = Checkpoint::open(dir.path());
  ASSERT_TRUE(ck.is_ok()) << ck.status().to_string();
  EXPECT_EQ(ck->names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_NE(ck->describe().find("model.safetensors.index.json"), std::string::npos);
  EXPECT_EQ(ck->get("b").value().data<float>()[2], 7.0f);
  EXPECT_EQ(ck->get("c").value().data<float>()[0], 8.0f);
  auto bad = ck->get("c", {2});
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("model-00002-of-00002.safetensors"), std::string::npos);

  // The index names a tensor its shard lacks.
  index["weight_map"]["d"] = "model-00002-of-00002.safetensors";
  write_bytes(dir / "model.safetensors.index.json", index.dump());
  Status st = open_status(dir.path());
  EXPECT_EQ(st.code(), StatusCode::kDataLoss) << st.to_string();
  EXPECT_NE(st.message().find("'d'"), std::string::npos) << st.message();

  // The index names a shard that is not there.
  index["weight_map"]["d"] = "model-00003-of-00002.safetensors";
  write_bytes(dir / "model.safetensors.index.json", index.dump());
  EXPECT_EQ(open_status(dir.path()).code(), StatusCode::kNotFound);
}

TEST(SafetensorsTest, MissingTensorAndWrongShape) {
  auto ck = Checkpoint::open(kLlama);
  ASSERT_TRUE(ck.is_ok());
  auto missing = ck->get("model.layers.9.mlp.up_proj.weight");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "tensor 'model.layers.9.mlp.up_proj.weight' not found in " +
                                            (kLlama / "model.safetensors").string());

  auto wrong = ck->get("model.norm.weight", {32});
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(wrong.status().message(), "tensor 'model.norm.weight' in " +
                                          (kLlama / "model.safetensors").string() +
                                          " has shape [64], expected [32]");
  EXPECT_EQ(open_status(kLlama / "nope.safetensors").code(), StatusCode::kNotFound);
}

TEST(SafetensorsCorruptTest, TruncatedFixture) {
  TempDir dir;
  const std::string raw = read_bytes(kLlama / "model.safetensors");
  const fs::path p = dir / "half.safetensors";
  write_bytes(p, raw.substr(0, raw.size() / 2));
  expect_data_loss(p, "past the end");
  write_bytes(p, raw.substr(0, 1000));  // inside the header
  expect_data_loss(p, "header length");
  write_bytes(p, raw.substr(0, 5));
  expect_data_loss(p, "too short");
  write_bytes(p, "");
  expect_data_loss(p, "too short");
}

TEST(SafetensorsCorruptTest, BadHeaders) {
  TempDir dir;
  const fs::path p = dir / "bad.safetensors";
  write_raw(p, "this is not json", 16);
  expect_data_loss(p, "not valid JSON");
  write_raw(p, "[1, 2, 3]", 16);
  expect_data_loss(p, "not an object");
  write_bytes(p, le64(uint64_t{1} << 62) + "{}");
  expect_data_loss(p, "header length");
  write_raw(p, R"({"x": {"dtype": "Q7", "shape": [2], "data_offsets": [0, 8]}})", 8);
  expect_data_loss(p, "unknown dtype");
  write_raw(p, R"({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "__metadata__": {"a": 1}})",
            8);
  expect_data_loss(p, "__metadata__");
  write_raw(p, R"({"x": {"dtype": "F32", "shape": [2]}})", 8);
  expect_data_loss(p, "data_offsets");
}

TEST(SafetensorsCorruptTest, BadOffsets) {
  TempDir dir;
  const fs::path p = dir / "bad.safetensors";
  write_raw(p, R"({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8);
  expect_data_loss(p, "past the end");
  write_raw(p, R"({"x": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}})", 8);
  expect_data_loss(p, "end before begin");
  write_raw(p, R"({"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 16);
  expect_data_loss(p, "needs 12");
  write_raw(p,
            R"({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "y": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
            16);
  expect_data_loss(p, "overlap");
  // Back-to-back tensors and empty tensors sharing an offset are fine.
  write_raw(p,
            R"({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "y": {"dtype": "BF16", "shape": [4], "data_offsets": [8, 16]},
                "z": {"dtype": "F32", "shape": [0, 3], "data_offsets": [8, 8]}})",
            16);
  EXPECT_TRUE(open_status(p).is_ok()) << open_status(p).to_string();
}

TEST(SafetensorsCorruptTest, UnsupportedDtypeIsUnimplemented) {
  TempDir dir;
  const fs::path p = dir / "fp8.safetensors";
  write_raw(p, R"({"x": {"dtype": "F8_E4M3", "shape": [8], "data_offsets": [0, 8]}})", 8);
  Status st = open_status(p);
  EXPECT_EQ(st.code(), StatusCode::kUnimplemented) << st.to_string();
  EXPECT_NE(st.message().find("F8_E4M3"), std::string::npos);
}

}  // namespace
}  // namespace longctx
