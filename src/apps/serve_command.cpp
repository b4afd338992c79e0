// `longctx serve`: the OpenAI-compatible HTTP server over one model (server/).
#include <csignal>
#include <cstdio>

#include "apps/commands.h"
#include "apps/engine_flags.h"
#include "apps/layout_flags.h"
#include "core/logging.h"
#include "server/http_server.h"
#include "server/served_model.h"

namespace longctx::apps {
namespace {

struct ServeFlags {
  std::string model, dtype;
  bool skip_tokenizer_init = false;
  int64_t max_waiting = 4096;
  server::ServerConfig server;
  EngineFlags engine;
};

int run_serve(const ServeFlags& f) {
  if (Status st = f.server.validate(); !st.is_ok()) return fail(st.message());
  server::ServedModelOptions opts;
  opts.model_dir = f.model;
  opts.served_model_name = f.server.served_model_name;
  opts.skip_tokenizer_init = f.skip_tokenizer_init;
  if (!f.dtype.empty()) {
    auto dt = parse_dtype(f.dtype);
    if (!dt.is_ok()) return fail("--dtype: " + dt.status().message());
    opts.load.dtype = *dt;
  }
  f.engine.adjust_load_options(opts.load, !f.dtype.empty());
  if (f.engine.on_gpu()) {
    // The server layer knows no device: it gets the executor from here, made on the weights it loads.
    opts.make_executor = [engine = f.engine](const DenseModel& m, const EngineConfig& cfg) {
      return engine.make_executor(m, cfg);
    };
  }
  opts.engine = f.engine.to_config();
  opts.engine.max_waiting = f.max_waiting;
  opts.engine.limits.max_n = f.server.limits.max_n;
  opts.engine.limits.max_stop_strings = f.server.limits.max_stop_strings;
  opts.engine.limits.max_stop_string_bytes = f.server.limits.max_stop_string_bytes;
  if (Status st = opts.engine.validate(); !st.is_ok()) return fail(st.message());
  if (int rc = check_layout_or_exit(f.engine.layout(), f.model); rc != 0) return rc;  // refuse to start
  if (int rc = f.engine.check_device_or_exit(f.model); rc != 0) return rc;

  // SIGTERM/SIGINT are taken by sigwait below: block them before any thread starts so
  // every thread inherits the mask and none is interrupted.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  server::HttpServer http(f.server);
  auto port = http.bind();
  if (!port.is_ok()) return fail(port.status().message());
  http.start();  // /health answers 503 while the model loads
  std::printf("longctx serve: listening on http://%s:%d (loading %s)\n", f.server.host.c_str(), *port,
              f.model.c_str());
  std::fflush(stdout);

  auto model = server::ServedModel::load(opts);
  if (!model.is_ok()) {
    http.stop();
    return fail(model.status().message());
  }
  const std::string name = (*model)->name();
  http.attach(std::shared_ptr<const server::ServedModel>(std::move(*model)));
  std::printf("longctx serve: serving %s at http://%s:%d/v1\n", name.c_str(), f.server.host.c_str(), *port);
  std::fflush(stdout);

  int sig = 0;
  sigwait(&sigs, &sig);
  LCTX_LOG_INFO("signal {}: draining (up to {} s)", sig, f.server.drain_timeout_s);
  http.drain();
  http.stop();
  LCTX_LOG_INFO("stopped");
  return 0;
}

}  // namespace

void add_serve_command(CLI::App& app, CommandRunner& run) {
  auto f = std::make_shared<ServeFlags>();
  server::ServerConfig& s = f->server;
  server::RequestLimits& l = s.limits;
  CLI::App* cmd = app.add_subcommand("serve", "Serve a model over the OpenAI-compatible HTTP API");
  cmd->add_option("--model", f->model, "Model directory (config.json, model.safetensors, tokenizer)")
      ->required();
  cmd->add_option("--host", s.host, "Address to listen on (0.0.0.0: every interface)")->capture_default_str();
  cmd->add_option("--port", s.port, "Port (0: any free port)")->capture_default_str();
  cmd->add_option("--served-model-name", s.served_model_name,
                  "Model name in the API (default: the directory's name)");
  cmd->add_option("--api-key", s.api_key, "Require 'Authorization: Bearer KEY' on every route but /health")
      ->envname("LONGCTX_API_KEY");
  cmd->add_flag("--metrics-open", s.metrics_open, "/metrics needs no API key");
  cmd->add_flag("--skip-tokenizer-init", f->skip_tokenizer_init,
                "Serve a checkpoint without a tokenizer: token-id prompts, token-id outputs");
  cmd->add_option("--dtype", f->dtype, "Convert weights on load: float32, bfloat16, float16");
  cmd->add_option("--max-waiting", f->max_waiting, "Waiting-queue bound (429 beyond)")->capture_default_str();
  cmd->add_option("--http-threads", s.http_threads, "Connection threads (each open stream holds one)")
      ->capture_default_str();
  cmd->add_option("--drain-timeout", s.drain_timeout_s, "Seconds SIGTERM lets in-flight requests finish")
      ->capture_default_str();
  cmd->add_option("--max-header-bytes", l.max_header_bytes,
                  "Limit on all request headers together (431 beyond)")
      ->capture_default_str();
  cmd->add_option("--max-body-bytes", l.max_body_bytes, "Limit on a request body (413 beyond)")
      ->capture_default_str();
  cmd->add_option("--max-n", l.max_n, "Limit on n (choices per prompt)")->capture_default_str();
  cmd->add_option("--max-prompts", l.max_prompts, "Limit on prompts in one completions request")
      ->capture_default_str();
  cmd->add_option("--max-logprobs", l.max_logprobs, "Limit on logprobs / top_logprobs / prompt_logprobs")
      ->capture_default_str();
  cmd->add_option("--max-tokens-limit", l.max_tokens, "Limit on max_tokens")->capture_default_str();
  cmd->add_option("--max-messages", l.max_messages, "Limit on chat messages in one request")
      ->capture_default_str();
  cmd->add_option("--max-stop-strings", l.max_stop_strings, "Limit on stop strings")->capture_default_str();
  cmd->add_option("--max-stop-string-bytes", l.max_stop_string_bytes, "Limit on one stop string's length")
      ->capture_default_str();
  f->engine.add_to(*cmd);
  cmd->callback([f, &run] { run = [f] { return run_serve(*f); }; });
}

}  // namespace longctx::apps
