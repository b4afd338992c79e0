#include "perf/planner.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace longctx {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / kGiB);
  return buf;
}

std::vector<int64_t> divisors(int64_t n) {
  std::vector<int64_t> d;
  for (int64_t i = 1; i <= n; ++i)
    if (n % i == 0) d.push_back(i);
  return d;
}

// The head rules of ParallelLayout::validate: tp divides the query heads, and divides
// the kv heads (tp ≤ H) or is a multiple of them (tp > H).
bool valid_tp(int64_t tp, int64_t num_heads, int64_t h) {
  if (num_heads % tp != 0) return false;
  return tp <= h ? h % tp == 0 : tp % h == 0;
}

int64_t replication(int64_t tp, int64_t h) { return tp > h ? tp / h : 1; }

std::string kib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f KiB", bytes / 1024.0);
  return buf;
}

}  // namespace

std::string PlannedLayout::flags() const {
  std::string s = "--tp " + std::to_string(tp);
  if (dcp > 1) s += " --dcp " + std::to_string(dcp);
  if (cp > 1) s += " --cp " + std::to_string(cp);
  if (kvp > 1)
    s += " --kvp " + std::to_string(kvp) + " --kvp-shard-tokens " + std::to_string(kvp_shard_tokens);
  if (pp > 1) s += " --pp " + std::to_string(pp);
  return s;
}

int64_t kv_duplication(int64_t tp, int64_t dcp, int64_t num_kv_heads) {
  return std::max<int64_t>(1, replication(tp, num_kv_heads) / dcp);
}

PlannedLayout price_layout(const Plan& p, const PlanRequest& req, PlannedLayout l) {
  const double usable = req.gpu_memory_bytes * req.memory_utilization;
  l.weights_bytes_per_rank = p.weights_bytes / static_cast<double>(l.tp * l.pp);
  l.kv_duplication = kv_duplication(l.tp, l.dcp, p.num_kv_heads);
  // A rank holds H/tp kv heads (tp ≤ H) or one head's tokens over dcp (tp > H): both are
  // kv · duplication / tp. pp splits the layers; cp and kvp split the tokens.
  l.kv_bytes_per_token_per_rank = p.kv_bytes_per_token * static_cast<double>(l.kv_duplication) /
                                  static_cast<double>(l.tp * l.pp * l.cp * l.kvp);
  const double free_bytes = usable - l.weights_bytes_per_rank;
  l.weights_fit = free_bytes > 0;
  l.max_context_tokens = 0;
  l.max_batch = 0;
  if (l.weights_fit && l.kv_bytes_per_token_per_rank > 0) {
    const double tokens = std::floor(free_bytes / l.kv_bytes_per_token_per_rank);
    l.max_context_tokens = static_cast<int64_t>(std::min(tokens, 1e15));
    l.max_batch = req.context_tokens > 0 ? l.max_context_tokens / req.context_tokens : 0;
  }
  return l;
}

Result<Plan> plan_layout(const ModelConfig& config, const PlanRequest& req) {
  if (req.gpus < 1) return invalid_argument("--gpus " + std::to_string(req.gpus) + " must be at least 1");
  if (!(req.gpu_memory_bytes > 0)) return invalid_argument("--gpu-mem must be positive");
  if (!(req.memory_utilization > 0 && req.memory_utilization <= 1))
    return invalid_argument("--gpu-mem-util must lie in (0, 1]");
  if (req.context_tokens < 1)
    return invalid_argument("--context " + std::to_string(req.context_tokens) + " must be at least 1");
  if (req.batch < 1) return invalid_argument("--batch " + std::to_string(req.batch) + " must be at least 1");
  if (!(req.weight_bytes > 0) || !(req.kv_bytes > 0))
    return invalid_argument("--weight-bytes and --kv-bytes must be positive");
  ModelShape shape = model_shape(config, req.kv_bytes);
  shape.bytes_per_param = req.weight_bytes;
  if (shape.num_heads < 1 || shape.num_kv_heads < 1)
    return invalid_argument("the model has no attention heads to plan for");

  Plan plan;
  const double embedding_params =
      config.tie_word_embeddings ? 0.0 : static_cast<double>(config.hidden_size * config.vocab_size);
  plan.weights_bytes = shape.weight_bytes() + embedding_params * req.weight_bytes;
  plan.kv_bytes_per_token = shape.kv_bytes_per_token;
  plan.num_heads = shape.num_heads;
  plan.num_kv_heads = shape.num_kv_heads;
  plan.usable_bytes_per_gpu = req.gpu_memory_bytes * req.memory_utilization;
  const int64_t h = shape.num_kv_heads;
  const int64_t tp_cap = std::min(req.gpus, std::max<int64_t>(1, req.max_tp));

  std::vector<int64_t> tps;  // valid tp values, ascending
  for (int64_t tp : divisors(req.gpus))
    if (tp <= tp_cap && valid_tp(tp, shape.num_heads, h)) tps.push_back(tp);
  for (int64_t tp : tps)
    for (int64_t dcp : divisors(replication(tp, h))) {
      PlannedLayout l;
      l.tp = tp;
      l.dcp = dcp;
      plan.candidates.push_back(price_layout(plan, req, l));
    }
  auto say = [&](std::string line) { plan.reasoning.push_back(std::move(line)); };
  say("weights " + gib(plan.weights_bytes) + " in all; KV " + kib(plan.kv_bytes_per_token) + " per token; " +
      gib(plan.usable_bytes_per_gpu) + " usable per GPU");
  if (tps.empty()) {
    plan.error = "no tp in [1, " + std::to_string(tp_cap) + "] divides the GPUs and the model's " +
                 std::to_string(shape.num_heads) + " query / " + std::to_string(h) + " kv heads";
    return plan;
  }

  // 1. The smallest tp (then pp, past one NVLink domain) at which the weights fit.
  PlannedLayout best;
  bool found = false;
  for (int64_t pp : divisors(req.gpus)) {
    for (int64_t tp : tps) {
      if (tp * pp > req.gpus || pp > std::max<int64_t>(1, shape.num_layers)) continue;
      PlannedLayout l;
      l.tp = tp;
      l.pp = pp;
      l = price_layout(plan, req, l);
      if (l.weights_fit) {
        best = l;
        found = true;
        break;
      }
    }
    if (found) break;
  }
  if (!found) {
    const int64_t tp = tps.back();
    plan.error = "weights do not fit: " + gib(plan.weights_bytes) + " split over all " +
                 std::to_string(req.gpus) + " GPU(s) (largest tp " + std::to_string(tp) + ") is " +
                 gib(plan.weights_bytes / static_cast<double>(req.gpus)) + " per GPU, more than the " +
                 gib(plan.usable_bytes_per_gpu) +
                 " usable (raise --gpus or --gpu-mem, or use 1-byte weights)";
    say(plan.error);
    return plan;
  }
  say("1. tp " + std::to_string(best.tp) + (best.pp > 1 ? " pp " + std::to_string(best.pp) : "") +
      ": the smallest split at which the weights fit (" + gib(best.weights_bytes_per_rank) + " per rank)");

  // 2. dcp = tp/H removes the duplication for free: it needs no GPUs of its own.
  auto with_full_dcp = [&](PlannedLayout l) {
    l.dcp = replication(l.tp, h);
    return price_layout(plan, req, l);
  };
  auto fits = [&](const PlannedLayout& l) { return l.max_batch >= req.batch; };
  const int64_t dup = kv_duplication(best.tp, 1, h);
  best = with_full_dcp(best);
  if (dup > 1)
    say("2. dcp " + std::to_string(best.dcp) + ": tp " + std::to_string(best.tp) +
        " > H = " + std::to_string(h) + " replicates the KV " + std::to_string(dup) +
        "x; dcp shards it along tokens instead (now " + std::to_string(best.kv_duplication) + "x)");
  else
    say("2. no dcp: tp " + std::to_string(best.tp) + " <= H = " + std::to_string(h) +
        " kv heads, the KV is not duplicated");

  // 3. Longer contexts: a larger TP group while one is available, then kvp groups.
  if (!fits(best)) {
    const int64_t small_tp = best.tp;
    PlannedLayout largest = best;
    for (int64_t tp : tps) {
      if (tp <= small_tp || tp * best.pp > req.gpus) continue;
      PlannedLayout l = best;
      l.tp = tp;
      largest = with_full_dcp(l);
      if (fits(largest)) break;
    }
    if (largest.tp != small_tp) {
      say("3. " + largest.flags() + ": " + std::to_string(req.batch) + " x " +
          std::to_string(req.context_tokens) + " tokens need more KV memory than tp " +
          std::to_string(small_tp) + " leaves" +
          (fits(largest) ? "" : "; the largest TP group still falls short"));
      best = largest;
    }
  }
  if (!fits(best)) {
    const int64_t room = req.gpus / best.world_size();
    for (int64_t kvp : divisors(room)) {
      if (kvp == 1) continue;
      PlannedLayout l = best;
      l.kvp = kvp;
      const int64_t shard = (req.context_tokens + kvp - 1) / kvp;
      l.kvp_shard_tokens = (shard + req.block_size - 1) / req.block_size * req.block_size;
      l = price_layout(plan, req, l);
      if (fits(l)) {
        say("4. kvp " + std::to_string(kvp) + ": the KV of a " + std::to_string(req.context_tokens) +
            "-token request split into " + std::to_string(kvp) + " shards of " +
            std::to_string(l.kvp_shard_tokens) + " tokens, one per TP group (--cp " + std::to_string(kvp) +
            " splits it the same way and also shortens prefill)");
        best = l;
        break;
      }
    }
  }
  plan.recommended = best;
  if (!fits(best)) {
    const double need = static_cast<double>(req.context_tokens) * static_cast<double>(req.batch) *
                        best.kv_bytes_per_token_per_rank;
    plan.error = "KV does not fit: " + std::to_string(req.batch) + " x " +
                 std::to_string(req.context_tokens) + " tokens need " + gib(need) + " per rank on " +
                 best.flags() + ", but only " + gib(plan.usable_bytes_per_gpu - best.weights_bytes_per_rank) +
                 " is left after the weights (max context " + std::to_string(best.max_context_tokens) +
                 " tokens; raise --gpus or --gpu-mem)";
    say(plan.error);
    return plan;
  }
  plan.fits = true;
  if (best.world_size() < req.gpus)
    say("the other " + std::to_string(req.gpus - best.world_size()) + " GPUs can serve " +
        std::to_string(req.gpus / best.world_size() - 1) +
        " more replica(s) of this layout (data parallel), or a larger tp for lower decode latency");
  if (shape.max_position_embeddings > 0 && req.context_tokens > shape.max_position_embeddings)
    say("note: --context " + std::to_string(req.context_tokens) +
        " exceeds the model's max_position_embeddings " + std::to_string(shape.max_position_embeddings));
  return plan;
}

}  // namespace longctx
