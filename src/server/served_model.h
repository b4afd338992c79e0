// ServedModel: everything the server needs about the one model it serves — the weights,
// the tokenizer and chat template (absent with --skip-tokenizer-init), and the engine
// behind its EngineLoop. Immutable once loaded apart from the engine, which only the
// loop's thread touches; handler threads share it through a shared_ptr.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "engine/llm_engine.h"
#include "model/dense_model.h"
#include "server/engine_loop.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace longctx::server {

struct ServedModelOptions {
  std::filesystem::path model_dir;
  std::string served_model_name;  // empty: the directory's name
  bool skip_tokenizer_init = false;
  ModelLoadOptions load;
  EngineConfig engine;
  // Makes the engine's executor on the loaded weights (`serve --device cuda`); unset: the CPU runner.
  std::function<Result<std::unique_ptr<ModelExecutor>>(const DenseModel&, const EngineConfig&)> make_executor;
};

class ServedModel {
 public:
  static Result<std::unique_ptr<ServedModel>> load(const ServedModelOptions& opts);

  const std::string& name() const { return name_; }
  const std::filesystem::path& model_dir() const { return model_dir_; }
  const DenseModel& model() const { return *model_; }
  const Tokenizer* tokenizer() const { return tokenizer_ ? &*tokenizer_ : nullptr; }
  const ChatTemplate* chat_template() const { return chat_template_ ? &*chat_template_ : nullptr; }
  // Why chat is unavailable (no tokenizer, no template in tokenizer_config.json); empty when it is.
  const std::string& chat_unavailable_reason() const { return chat_unavailable_; }
  int64_t max_model_len() const { return max_model_len_; }
  int64_t vocab_size() const { return model_->config().vocab_size; }
  EngineLoop& loop() const { return *loop_; }
  int64_t created_unix_s() const { return created_; }

 private:
  ServedModel() = default;

  std::string name_;
  std::filesystem::path model_dir_;
  std::optional<DenseModel> model_;
  std::optional<Tokenizer> tokenizer_;
  std::optional<ChatTemplate> chat_template_;
  std::string chat_unavailable_;
  int64_t max_model_len_ = 0;
  int64_t created_ = 0;
  std::unique_ptr<EngineLoop> loop_;  // last: its thread stops before the model goes
};

}  // namespace longctx::server
