#include "server/routes.h"

#include <chrono>

#include "server/chat_messages.h"
#include "server/connection_probe.h"
#include "server/generation_session.h"
#include "server/openai_response.h"
#include "server/tokenize_api.h"

namespace longctx::server {
namespace {

using nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

ParseContext parse_context(const ServedModel& m, const RequestLimits& limits) {
  ParseContext c;
  c.tokenizer = m.tokenizer();
  c.chat_template = m.chat_template();
  c.chat_unavailable_reason = m.chat_unavailable_reason();
  c.max_model_len = m.max_model_len();
  c.vocab_size = m.vocab_size();
  c.limits = limits;
  return c;
}

// The body as a JSON object, or the 400 to send.
bool parse_body(const httplib::Request& req, httplib::Response& res, ordered_json& body) {
  auto parsed = parse_request_body(req.body);
  if (!parsed.is_ok()) {
    write_error(res, api_error_from(parsed.status()));
    return false;
  }
  body = std::move(*parsed);
  return true;
}

void write_json(httplib::Response& res, const ordered_json& j) {
  res.set_content(dump_json(j), "application/json");
}

// Streams a session as Server-Sent Events. The provider runs on the connection's
// thread after the handler returns; a failed write means the client went away, and
// the session is aborted at once (its KV blocks freed).
void stream_session(httplib::Response& res, std::shared_ptr<const OpenAIRequest> request,
                    std::shared_ptr<GenerationSession> session, std::shared_ptr<ResponseFormatter> fmt,
                    std::shared_ptr<const ServedModel> model, std::shared_ptr<void> in_flight) {
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  auto last_write = std::make_shared<Clock::time_point>(Clock::now());
  res.set_chunked_content_provider(
      "text/event-stream",
      [request, session, fmt, model, in_flight, last_write](size_t, httplib::DataSink& sink) {
        std::string buf;
        for (const GenerationSession::Delta& d : session->next(std::chrono::milliseconds(200)))
          buf += sse_event(fmt->chunk(d.choice, session->choices()[static_cast<size_t>(d.choice)], d.output,
                                      d.first, d.text_before));
        const bool done = session->done();
        if (done) {
          if (!session->error().empty())
            buf += sse_event(
                ApiError{500, session->error(), "internal_error", std::nullopt, std::nullopt}.to_json());
          if (request->include_usage) buf += sse_event(fmt->usage_chunk(session->usage()));
          buf += kSseDone;
        }
        // An SSE comment while nothing comes (a long prefill): clients ignore it, and
        // writing it is how a disconnected client is noticed.
        if (buf.empty() && Clock::now() - *last_write > std::chrono::seconds(1)) buf = ": keep-alive\n\n";
        if (!buf.empty()) {
          if (!sink.write(buf.data(), buf.size())) {
            session->cancel();
            return false;
          }
          *last_write = Clock::now();
        }
        if (done) sink.done();
        return true;
      },
      [session](bool success) {
        if (!success) session->cancel();
      });
}

}  // namespace

void write_error(httplib::Response& res, const ApiError& e) {
  res.status = e.http_status;
  write_json(res, e.to_json());
}

void handle_generation(ApiKind kind, std::shared_ptr<const ServedModel> model, const RequestLimits& limits,
                       const httplib::Request& req, httplib::Response& res, std::shared_ptr<void> in_flight) {
  ordered_json body;
  if (!parse_body(req, res, body)) return;
  if (auto m = body.find("model");
      m != body.end() && m->is_string() && m->get<std::string>() != model->name()) {
    write_error(res, not_found_error("The model `" + m->get<std::string>() +
                                         "` does not exist (this server serves `" + model->name() + "`)",
                                     "model_not_found"));
    return;
  }
  const ParseContext ctx = parse_context(*model, limits);
  auto parsed = kind == ApiKind::kChat ? parse_chat_request(body, ctx) : parse_completion_request(body, ctx);
  if (!parsed.is_ok()) return write_error(res, api_error_from(parsed.status()));
  auto request = std::make_shared<const OpenAIRequest>(std::move(*parsed));
  auto session = GenerationSession::start(model->loop(), *request);
  if (!session.is_ok()) return write_error(res, api_error_from(session.status()));
  auto fmt = std::make_shared<ResponseFormatter>(*request, model->name(), model->tokenizer());
  if (request->stream) {
    stream_session(res, request, *session, fmt, model, std::move(in_flight));
    return;
  }
  // Nothing is written until the end, so a client that goes away is noticed by probing
  // its socket between engine outputs; its request is then aborted (KV blocks freed).
  const ConnectionProbe probe =
      ConnectionProbe::find(req.local_addr, req.local_port, req.remote_addr, req.remote_port);
  while (!(*session)->done()) {
    (*session)->next(std::chrono::milliseconds(100));
    if (probe.client_gone()) {
      (*session)->cancel();
      // Never read by anyone; set so that the log and httplib see an error, not a 200.
      return write_error(res, ApiError{499, "the client closed the connection", "invalid_request_error",
                                       std::nullopt, "client_closed_request"});
    }
  }
  if (!(*session)->error().empty())
    return write_error(res, ApiError{500, (*session)->error(), "internal_error", std::nullopt, std::nullopt});
  write_json(res, fmt->response((*session)->choices(), (*session)->usage()));
}

void handle_tokenize(const ServedModel& model, const RequestLimits& limits, const httplib::Request& req,
                     httplib::Response& res) {
  ordered_json body;
  if (!parse_body(req, res, body)) return;
  auto out = tokenize_response(body, parse_context(model, limits));
  if (!out.is_ok()) return write_error(res, api_error_from(out.status()));
  write_json(res, *out);
}

void handle_detokenize(const ServedModel& model, const RequestLimits& limits, const httplib::Request& req,
                       httplib::Response& res) {
  ordered_json body;
  if (!parse_body(req, res, body)) return;
  auto out = detokenize_response(body, parse_context(model, limits));
  if (!out.is_ok()) return write_error(res, api_error_from(out.status()));
  write_json(res, *out);
}

void handle_models(const ServedModel& model, const httplib::Request& req, httplib::Response& res) {
  ordered_json card = {{"id", model.name()},
                       {"object", "model"},
                       {"created", model.created_unix_s()},
                       {"owned_by", "longctx"},
                       {"root", model.model_dir().string()},
                       {"parent", nullptr},
                       {"max_model_len", model.max_model_len()}};
  if (req.matches.size() > 1) {  // GET /v1/models/{id}
    const std::string id = req.matches[1];
    if (id != model.name())
      return write_error(res, not_found_error("The model `" + id + "` does not exist", "model_not_found"));
    return write_json(res, card);
  }
  write_json(res, {{"object", "list"}, {"data", ordered_json::array({card})}});
}

}  // namespace longctx::server
