#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "text/tokenizer.h"

namespace longctx::apps {

void add_tokenize_command(CLI::App& app, CommandRunner& run) {
  struct Flags {
    std::string model, text;
    bool json = false, add_special_tokens = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Encode text with a model's tokenizer");
  cmd->add_option("--model", f->model, "Model directory (tokenizer.json inside)")->required();
  cmd->add_option("--text", f->text, "Text to encode")->required();
  cmd->add_flag("--add-special-tokens", f->add_special_tokens, "Apply the tokenizer's post-processor (e.g. BOS)");
  cmd->add_flag("--json", f->json, "Print {\"ids\": [...]}");
  cmd->callback([f, &run] {
    run = [f] {
      auto tok = Tokenizer::load(f->model);
      if (!tok.is_ok()) return fail(tok.status().message());
      auto ids = tok->encode(f->text, f->add_special_tokens);
      if (!ids.is_ok()) return fail(ids.status().message());
      if (f->json) {
        std::printf("%s\n", nlohmann::json{{"ids", *ids}}.dump().c_str());
      } else {
        for (size_t i = 0; i < ids->size(); ++i) std::printf("%s%d", i ? " " : "", (*ids)[i]);
        std::printf("\n");
      }
      return 0;
    };
  });
}

}  // namespace longctx::apps
