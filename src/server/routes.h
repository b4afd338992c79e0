// The route handlers behind HttpServer, each given the served model (ready: loading,
// draining and authentication were checked before) and the request limits. A handler
// writes either its response or an OpenAI-shaped error.
#pragma once

#include <httplib.h>

#include <memory>

#include "server/api_error.h"
#include "server/openai_request.h"
#include "server/served_model.h"
#include "server/server_config.h"

namespace longctx::server {

void write_error(httplib::Response& res, const ApiError& e);

// POST /v1/completions and /v1/chat/completions, whole or streamed (SSE). `in_flight`
// is held until the response is fully written (SIGTERM's drain waits for it).
void handle_generation(ApiKind kind, std::shared_ptr<const ServedModel> model, const RequestLimits& limits,
                       const httplib::Request& req, httplib::Response& res, std::shared_ptr<void> in_flight);
void handle_tokenize(const ServedModel& model, const RequestLimits& limits, const httplib::Request& req,
                     httplib::Response& res);
void handle_detokenize(const ServedModel& model, const RequestLimits& limits, const httplib::Request& req,
                       httplib::Response& res);
void handle_models(const ServedModel& model, const httplib::Request& req, httplib::Response& res);

}  // namespace longctx::server
