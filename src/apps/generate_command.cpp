#include <charconv>
#include <filesystem>
#include <optional>

#include <nlohmann/json.hpp>

#include "apps/batch_file.h"
#include "apps/commands.h"
#include "apps/engine_flags.h"
#include "apps/layout_flags.h"
#include "model/dense_model.h"
#include "model/generation.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace longctx::apps {
namespace {

struct GenerateFlags {
  std::string model, prompt, chat, prompt_ids, dtype, batch_file;
  EngineFlags engine;
  int64_t max_tokens = 16;
  float temperature = 0.0f;
  uint64_t seed = 0;
  int64_t prefill_chunk = 0;
  bool json = false, ignore_eos = false;
};

Result<std::vector<int32_t>> parse_ids(std::string_view text) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find(',', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view item = text.substr(pos, end - pos);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size() || v < 0 || v > INT32_MAX)
      return invalid_argument("--prompt-ids: '" + std::string(item) + "' (item " + std::to_string(ids.size()) +
                              ") is not a non-negative token id; expected e.g. 1,2,3");
    ids.push_back(static_cast<int32_t>(v));
    pos = end + 1;
  }
  return ids;
}

// Prints the result of one generation: JSON, streamed text, or the token ids.
int print_result(const GenerateFlags& f, const Tokenizer* tok, const std::vector<int32_t>& prompt,
                 const std::vector<int32_t>& tokens, const std::string& finish_reason,
                 std::optional<IncrementalDetokenizer>& stream) {
  if (f.json) {
    nlohmann::json j = {{"prompt_token_ids", prompt}, {"token_ids", tokens}, {"finish_reason", finish_reason}};
    if (tok) {
      auto text = tok->decode(tokens, /*skip_special_tokens=*/true);
      if (!text.is_ok()) return fail(text.status().message());
      j["text"] = *text;
    } else {
      j["text"] = nullptr;  // no tokenizer in the model directory
    }
    std::printf("%s\n", j.dump().c_str());
  } else if (stream) {
    std::printf("%s\n", stream->finish().c_str());
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) std::printf("%s%d", i ? " " : "", tokens[i]);
    std::printf("\n");
  }
  return 0;
}

// One prompt under a parallel layout or on the GPU: the engine drives the ranks or the GPU
// (the single-sequence generate() path is one CPU rank only). --prefill-chunk becomes the
// step's token budget.
int run_on_engine(const GenerateFlags& f, const DenseModel& model, const Tokenizer* tok,
                  const std::vector<int32_t>& prompt) {
  EngineConfig cfg = f.engine.to_config();
  if (f.prefill_chunk > 0) cfg.scheduler.max_num_batched_tokens = f.prefill_chunk;
  auto engine = f.engine.create_engine(model, tok, cfg);
  if (!engine.is_ok()) return fail(engine.status().message());
  GenerationRequest req;
  req.prompt_token_ids = prompt;
  req.max_tokens = f.max_tokens;
  req.sampling.temperature = f.temperature;
  req.sampling.seed = f.seed;
  req.ignore_eos = f.ignore_eos;
  auto id = (*engine)->add_request(std::move(req));
  if (!id.is_ok()) return fail(id.status().message());
  std::optional<IncrementalDetokenizer> stream;
  if (tok && !f.json) stream.emplace(*tok);
  std::vector<int32_t> tokens;
  std::string finish_reason;
  while ((*engine)->has_unfinished()) {
    for (const RequestOutput& o : (*engine)->step()) {
      for (int32_t t : o.new_token_ids) {
        tokens.push_back(t);
        if (stream) {
          std::fputs(stream->push(t).c_str(), stdout);
          std::fflush(stdout);
        }
      }
      if (o.finished) finish_reason = o.finish_reason;
    }
  }
  if (finish_reason == "abort")
    return fail(f.engine.on_gpu() ? "generation failed on the GPU (the log says why)"
                                  : "generation failed under the layout " + (*engine)->layout().to_string());
  return print_result(f, tok, prompt, tokens, finish_reason, stream);
}

int run_generate(const GenerateFlags& f) {
  const int sources = !f.prompt.empty() + !f.chat.empty() + !f.prompt_ids.empty() + !f.batch_file.empty();
  if (sources != 1) return fail("give exactly one of --prompt, --chat, --prompt-ids, --batch-file");
  if (f.max_tokens < 0) return fail("--max-tokens must be >= 0");
  if (f.temperature < 0) return fail("--temperature must be >= 0 (0 is greedy)");

  // An impossible layout is a usage error, caught before the weights load.
  if (int rc = check_layout_or_exit(f.engine.layout(), f.model); rc != 0) return rc;
  if (int rc = f.engine.check_device_or_exit(f.model); rc != 0) return rc;

  ModelLoadOptions load_opts;
  if (!f.dtype.empty()) {
    auto dt = parse_dtype(f.dtype);
    if (!dt.is_ok()) return fail("--dtype: " + dt.status().message());
    load_opts.dtype = *dt;
  }
  f.engine.adjust_load_options(load_opts, !f.dtype.empty());
  auto model = DenseModel::load(f.model, load_opts);
  if (!model.is_ok()) return fail(model.status().message());

  // The tokenizer is optional with --prompt-ids and --batch-file (checkpoints without one,
  // like the fixtures; batch lines then give prompt_token_ids).
  std::optional<Tokenizer> tok;
  const bool has_tokenizer = std::filesystem::exists(std::filesystem::path(f.model) / "tokenizer.json");
  if (has_tokenizer || (f.prompt_ids.empty() && f.batch_file.empty())) {
    auto t = Tokenizer::load(f.model);
    if (!t.is_ok()) return fail(t.status().message());
    tok = std::move(*t);
  }

  if (!f.batch_file.empty()) {
    std::optional<ChatTemplate> tmpl;
    if (tok) {
      auto t = ChatTemplate::load(f.model);
      if (t.is_ok()) tmpl = std::move(*t);  // lines with "messages" report its absence
    }
    auto engine = f.engine.create_engine(*model, tok ? &*tok : nullptr, f.engine.to_config());
    if (!engine.is_ok()) return fail(engine.status().message());
    return run_batch_file(f.batch_file, **engine, tok ? &*tok : nullptr, tmpl ? &*tmpl : nullptr,
                          {f.max_tokens, f.temperature});
  }

  std::vector<int32_t> prompt;
  if (!f.prompt_ids.empty()) {
    auto ids = parse_ids(f.prompt_ids);
    if (!ids.is_ok()) return fail(ids.status().message());
    prompt = *ids;
  } else if (!f.prompt.empty()) {
    auto ids = tok->encode(f.prompt, /*add_special_tokens=*/true);
    if (!ids.is_ok()) return fail("--prompt: " + ids.status().message());
    prompt = *ids;
  } else {
    auto tmpl = ChatTemplate::load(f.model);
    if (!tmpl.is_ok()) return fail(tmpl.status().message());
    auto text = tmpl->render(nlohmann::json::array({{{"role", "user"}, {"content", f.chat}}}), true);
    if (!text.is_ok()) return fail("--chat: " + text.status().message());
    auto ids = tok->encode(*text, /*add_special_tokens=*/false);  // the template has its own BOS
    if (!ids.is_ok()) return fail("--chat: " + ids.status().message());
    prompt = *ids;
  }

  if (f.engine.has_layout() || f.engine.on_gpu())
    return run_on_engine(f, *model, tok ? &*tok : nullptr, prompt);

  GenerationOptions opts;
  opts.max_new_tokens = f.max_tokens;
  opts.temperature = f.temperature;
  opts.seed = f.seed;
  opts.prefill_chunk_tokens = f.prefill_chunk;
  if (!f.ignore_eos) {
    for (int64_t id : model->config().eos_token_ids) opts.stop_token_ids.push_back(static_cast<int32_t>(id));
    if (tok && tok->eos_token_id()) opts.stop_token_ids.push_back(*tok->eos_token_id());
  }

  std::optional<IncrementalDetokenizer> stream;
  if (tok && !f.json) stream.emplace(*tok);
  auto on_token = [&](int32_t id) {
    if (!stream) return;
    std::fputs(stream->push(id).c_str(), stdout);
    std::fflush(stdout);
  };
  auto out = generate(*model, prompt, opts, on_token);
  if (!out.is_ok()) return fail(out.status().message());
  return print_result(f, tok ? &*tok : nullptr, prompt, out->token_ids, out->finish_reason, stream);
}

}  // namespace

void add_generate_command(CLI::App& app, CommandRunner& run) {
  auto f = std::make_shared<GenerateFlags>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate a continuation of one prompt");
  cmd->add_option("--model", f->model, "Model directory (config.json, model.safetensors, tokenizer)")->required();
  cmd->add_option("--prompt", f->prompt, "Prompt text (tokenized with special tokens, e.g. BOS)");
  cmd->add_option("--chat", f->chat, "A user message, rendered through the model's chat template");
  cmd->add_option("--prompt-ids", f->prompt_ids, "Prompt as comma-separated token ids, e.g. 1,2,3");
  cmd->add_option("--max-tokens", f->max_tokens, "Tokens to generate")->capture_default_str();
  cmd->add_option("--temperature", f->temperature, "Sampling temperature (0 = greedy)")->capture_default_str();
  cmd->add_option("--seed", f->seed, "Sampling seed")->capture_default_str();
  cmd->add_option("--dtype", f->dtype, "Convert weights on load: float32, bfloat16, float16");
  cmd->add_option("--prefill-chunk", f->prefill_chunk, "Prefill the prompt in chunks of this many tokens (0 = one)")
      ->capture_default_str();
  cmd->add_option("--batch-file", f->batch_file,
                  "JSONL file, one request per line (prompt | prompt_token_ids | messages, plus OpenAI sampling "
                  "fields); runs them concurrently and prints one JSON result per line");
  f->engine.add_to(*cmd);
  cmd->add_flag("--ignore-eos", f->ignore_eos, "Do not stop at the end-of-sequence token");
  cmd->add_flag("--json", f->json, "Print {\"token_ids\": [...], \"text\": \"...\"}");
  cmd->callback([f, &run] { run = [f] { return run_generate(*f); }; });
}

}  // namespace longctx::apps
