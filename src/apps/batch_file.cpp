#include "apps/batch_file.h"

#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "engine/generation_request_json.h"

namespace longctx::apps {
namespace {

using nlohmann::json;

Result<std::vector<int32_t>> prompt_of(const json& j, const Tokenizer* tok, const ChatTemplate* tmpl) {
  auto ids_from = [](const json& a) -> Result<std::vector<int32_t>> {
    std::vector<int32_t> ids;
    for (const auto& t : a) {
      if (!t.is_number_integer()) return invalid_argument("prompt token ids must be integers");
      ids.push_back(t.get<int32_t>());
    }
    return ids;
  };
  if (auto it = j.find("prompt_token_ids"); it != j.end()) {
    if (!it->is_array()) return invalid_argument("prompt_token_ids must be a list of integers");
    return ids_from(*it);
  }
  if (auto it = j.find("prompt"); it != j.end()) {
    if (it->is_array()) return ids_from(*it);
    if (!it->is_string()) return invalid_argument("prompt must be a string or a list of token ids");
    if (!tok) return invalid_argument("prompt: text needs a tokenizer; give prompt_token_ids");
    return tok->encode(it->get<std::string>(), /*add_special_tokens=*/true);
  }
  if (auto it = j.find("messages"); it != j.end()) {
    if (!tok || !tmpl) return invalid_argument("messages: needs the model's tokenizer and chat template");
    LONGCTX_ASSIGN_OR_RETURN(std::string text, tmpl->render(*it, true));
    return tok->encode(text, /*add_special_tokens=*/false);
  }
  return invalid_argument("each line needs one of prompt, prompt_token_ids, messages");
}

}  // namespace

int run_batch_file(const std::string& path, LLMEngine& engine, const Tokenizer* tokenizer,
                   const ChatTemplate* chat_template, const BatchDefaults& defaults) {
  std::ifstream in(path);
  if (!in) return fail("--batch-file: cannot open " + path);
  std::vector<json> results;
  std::map<RequestId, size_t> line_of;
  std::string line;
  for (size_t i = 0; std::getline(in, line);) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const size_t index = i++;
    json result = {{"index", index}};
    auto fail_line = [&](const std::string& msg) {
      result["error"] = msg;
      results.push_back(result);
    };
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      fail_line(path + " line " + std::to_string(index + 1) + ": not a JSON object");
      continue;
    }
    GenerationRequest req;
    req.max_tokens = defaults.max_tokens;
    req.sampling.temperature = defaults.temperature;
    if (Status st = read_sampling_fields(j, req); !st.is_ok()) {
      fail_line(st.message());
      continue;
    }
    auto prompt = prompt_of(j, tokenizer, chat_template);
    if (!prompt.is_ok()) {
      fail_line(prompt.status().message());
      continue;
    }
    req.prompt_token_ids = std::move(*prompt);
    const int64_t n = req.n;
    auto id = engine.add_request(std::move(req));
    if (!id.is_ok()) {
      fail_line(id.status().message());
      continue;
    }
    result["outputs"] = json::array();
    for (int64_t k = 0; k < n; ++k) result["outputs"].push_back({{"token_ids", json::array()}, {"text", ""}});
    line_of[*id] = results.size();
    results.push_back(result);
  }
  while (engine.has_unfinished()) {
    for (const RequestOutput& o : engine.step()) {
      json& r = results[line_of.at(o.request_id)];
      json& out = r["outputs"][static_cast<size_t>(o.index)];
      for (int32_t t : o.new_token_ids) out["token_ids"].push_back(t);
      out["text"] = out["text"].get<std::string>() + o.text;
      r["prompt_tokens"] = o.num_prompt_tokens;
      r["cached_tokens"] = o.num_cached_tokens;
      if (o.finished) out["finish_reason"] = o.finish_reason;
    }
  }
  for (auto& r : results) {
    if (!tokenizer && r.contains("outputs"))
      for (auto& o : r["outputs"]) o["text"] = nullptr;
    std::printf("%s\n", r.dump().c_str());
  }
  return 0;
}

}  // namespace longctx::apps
