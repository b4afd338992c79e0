#include "server/served_model.h"

#include <chrono>

namespace longctx::server {

Result<std::unique_ptr<ServedModel>> ServedModel::load(const ServedModelOptions& opts) {
  std::unique_ptr<ServedModel> m(new ServedModel());
  m->model_dir_ = opts.model_dir;
  m->name_ = opts.served_model_name;
  if (m->name_.empty()) {
    const std::filesystem::path p = opts.model_dir.lexically_normal();
    m->name_ = (p.has_filename() ? p.filename() : p.parent_path().filename()).string();
  }
  auto model = DenseModel::load(opts.model_dir, opts.load);
  if (!model.is_ok()) return model.status();
  m->model_.emplace(std::move(*model));
  if (opts.skip_tokenizer_init) {
    m->chat_unavailable_ =
        "the server runs with --skip-tokenizer-init: send /v1/completions with token-id prompts";
  } else {
    auto tok = Tokenizer::load(opts.model_dir);
    if (!tok.is_ok())
      return Status(
          tok.status().code(),
          tok.status().message() + " (serve a checkpoint without a tokenizer with --skip-tokenizer-init)");
    m->tokenizer_.emplace(std::move(*tok));
    auto tmpl = ChatTemplate::load(opts.model_dir);
    if (tmpl.is_ok()) {
      m->chat_template_.emplace(std::move(*tmpl));
    } else {
      m->chat_unavailable_ = "the model has no chat template: " + tmpl.status().message();
    }
  }
  std::unique_ptr<ModelExecutor> executor;
  if (opts.make_executor) {
    auto x = opts.make_executor(*m->model_, opts.engine);
    if (!x.is_ok()) return x.status();
    executor = std::move(*x);
  }
  auto engine = executor ? LLMEngine::create(*m->model_, m->tokenizer(), opts.engine, std::move(executor))
                         : LLMEngine::create(*m->model_, m->tokenizer(), opts.engine);
  if (!engine.is_ok()) return engine.status();
  m->max_model_len_ = (*engine)->config().scheduler.max_model_len;
  m->created_ =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  m->loop_ = std::make_unique<EngineLoop>(std::move(*engine));
  return m;
}

}  // namespace longctx::server
