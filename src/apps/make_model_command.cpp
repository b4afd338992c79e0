#include <filesystem>

#include "apps/commands.h"
#include "model/presets.h"

#ifndef LONGCTX_DEFAULT_TOKENIZERS_DIR
#define LONGCTX_DEFAULT_TOKENIZERS_DIR "third_party/tokenizers"
#endif

namespace longctx::apps {

void add_make_model_command(CLI::App& app, CommandRunner& run) {
  struct Flags {
    std::string arch = "qwen3", preset = "tiny", out, tokenizers_dir = LONGCTX_DEFAULT_TOKENIZERS_DIR;
    std::string dtype = "bfloat16";
    uint64_t seed = 0;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("make-model", "Write a random-weight Hugging Face checkpoint with a real tokenizer");
  cmd->add_option("--arch", f->arch, "Architecture: qwen3, qwen2, llama, mixtral, qwen3_moe, deepseek_v3")
      ->capture_default_str();
  cmd->add_option("--preset", f->preset,
                  "Shape preset: tiny, 0.6b (qwen3), 8b (qwen3, llama), 8x7b (mixtral), 30b-a3b (qwen3_moe), "
                  "671b (deepseek_v3)")
      ->capture_default_str();
  cmd->add_option("--out", f->out, "Output directory")->required();
  cmd->add_option("--dtype", f->dtype, "Weights on disk: bfloat16, float16, float32")->capture_default_str();
  cmd->add_option("--seed", f->seed, "Seed of the random weights")->capture_default_str();
  cmd->add_option("--tokenizers-dir", f->tokenizers_dir, "Folder with NAME/tokenizer.json (fetched by setup)")
      ->capture_default_str();
  cmd->callback([f, &run] {
    run = [f] {
      auto preset = find_model_preset(f->arch, f->preset);
      if (!preset.is_ok()) return fail(preset.status().message());
      MakeModelOptions opts;
      opts.out_dir = f->out;
      opts.tokenizers_dir = f->tokenizers_dir;
      opts.dtype = f->dtype;
      opts.seed = f->seed;
      Status st = make_model(*preset, opts);
      if (!st.is_ok()) return fail(st.message());
      std::printf("wrote %s/%s to %s\n", f->arch.c_str(), f->preset.c_str(), f->out.c_str());
      return 0;
    };
  });
}

}  // namespace longctx::apps
