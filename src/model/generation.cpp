#include "model/generation.h"

#include <algorithm>
#include <random>

#include "ops/cpu/sampling.h"

namespace longctx {

Result<GenerationResult> generate(const DenseModel& model, std::span<const int32_t> prompt,
                                  const GenerationOptions& opts, const std::function<void(int32_t)>& on_token) {
  if (prompt.empty()) return invalid_argument("generate: the prompt is empty (at least one token is needed)");
  if (opts.max_new_tokens < 0) return invalid_argument("generate: max_new_tokens must be >= 0");
  const int64_t vocab = model.config().vocab_size;
  const int64_t n = static_cast<int64_t>(prompt.size());
  SequenceKV kv = model.new_kv(n + opts.max_new_tokens);
  std::mt19937_64 rng(opts.seed);
  GenerationResult out;
  out.finish_reason = "length";
  if (opts.max_new_tokens == 0) return out;

  // Prefill: every chunk but the last needs no logits.
  const int64_t chunk = opts.prefill_chunk_tokens > 0 ? opts.prefill_chunk_tokens : n;
  Tensor logits;
  for (int64_t begin = 0; begin < n; begin += chunk) {
    const int64_t len = std::min(chunk, n - begin);
    const bool last = begin + len == n;
    std::vector<int64_t> rows;
    if (last) rows.push_back(len - 1);
    LONGCTX_ASSIGN_OR_RETURN(logits, model.forward(prompt.subspan(static_cast<size_t>(begin), static_cast<size_t>(len)),
                                                   kv, rows));
  }
  const std::vector<int64_t> last_row{0};
  while (true) {
    const int32_t next = cpu::sample_with_temperature(logits.data<float>(), vocab, opts.temperature, rng);
    out.token_ids.push_back(next);
    if (on_token) on_token(next);
    if (std::find(opts.stop_token_ids.begin(), opts.stop_token_ids.end(), next) != opts.stop_token_ids.end()) {
      out.finish_reason = "stop";
      break;
    }
    if (static_cast<int64_t>(out.token_ids.size()) >= opts.max_new_tokens) break;
    const int32_t ids[1] = {next};
    LONGCTX_ASSIGN_OR_RETURN(logits, model.forward(ids, kv, last_row));
  }
  return out;
}

}  // namespace longctx
