// DeepSeek-V3's latent KV cache holds (kv_lora_rank + qk_rope_head_dim) values per token
// per layer — one latent shared by K and V — not per-head keys and values.
#include <gtest/gtest.h>

#include "engine/llm_engine.h"
#include "model/dense_model.h"

namespace longctx {
namespace {

TEST(MlaKvCache, BytesPerTokenAreTheLatentOnly) {
  auto model = DenseModel::load(std::string(LONGCTX_TEST_DATA_DIR) + "/hf/deepseek_v3_mla");
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  const ModelConfig& c = model->config();
  const KVCacheShape s = model->kv_cache_shape(10, 16);
  const int64_t bytes_per_token = (c.kv_lora_rank + c.qk_rope_head_dim) * c.num_layers * int64_t(sizeof(float));
  EXPECT_EQ(bytes_per_token, (16 + 8) * 3 * 4);
  EXPECT_EQ(s.bytes_per_block(), bytes_per_token * 16);
  // Per-head K and V would have been 2 · H · (nope + rope) per token per layer.
  EXPECT_LT(s.bytes_per_block(), 2 * c.num_heads * (c.qk_nope_head_dim + c.qk_rope_head_dim) * c.num_layers * 16 * 4);
  PagedKVCache cache(s);
  EXPECT_EQ(cache.k(0), cache.v(0));  // V aliases K: stored once

  // The engine sizes its block pool from the same figure.
  EngineConfig cfg;
  cfg.kv_cache_memory_bytes = 100 * bytes_per_token * 16;
  auto engine = LLMEngine::create(*model, nullptr, cfg);
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  EXPECT_EQ((*engine)->num_kv_blocks(), 100);
  EXPECT_EQ((*engine)->kv_manager().num_total_blocks(), 99);  // block 0 is the null block
}

}  // namespace
}  // namespace longctx
