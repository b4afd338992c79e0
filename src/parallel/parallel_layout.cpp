#include "parallel/parallel_layout.h"

#include <algorithm>
#include <string>

namespace longctx {
namespace {

std::string str(int64_t v) { return std::to_string(v); }

// Helix's own rules (tp here is TPA, the attention head split). Checked after the
// generic tp/head rules, so tp already divides Hq and H or is a multiple of H.
Status validate_helix(const ParallelConfig& c, const LayoutModelDims& d) {
  if (!c.helix) return Status::ok();
  if (c.cp > 1)
    return invalid_argument("--helix does not combine with --cp " + str(c.cp) +
                            ": Helix runs every new token on all kvp·tp ranks, ring attention splits them");
  if (c.dcp > 1)
    return invalid_argument("--helix does not combine with --dcp " + str(c.dcp) +
                            ": Helix shards the KV over --kvp and keeps tp (TPA) <= H, so no KV is "
                            "replicated for DCP to shard");
  if (d.num_kv_heads > 0 && c.tp > d.num_kv_heads)
    return invalid_argument("--helix: --tp " + str(c.tp) +
                            " (TPA, the attention head split) must not exceed the model's " +
                            str(d.num_kv_heads) +
                            " kv heads (Helix never replicates KV; add --kvp ranks instead)");
  if (d.num_heads > 0 && c.kvp > d.num_heads / c.tp)
    return invalid_argument("--helix: --kvp " + str(c.kvp) + " must not exceed the " +
                            str(d.num_heads / c.tp) +
                            " query heads of a TPA rank (Hq/tp; after the all-to-all each KVP rank "
                            "merges and projects a share of them)");
  return Status::ok();
}

}  // namespace

int ProcessGroup::index_of(int global_rank) const {
  const auto it = std::find(ranks.begin(), ranks.end(), global_rank);
  return it == ranks.end() ? -1 : static_cast<int>(it - ranks.begin());
}

Status ParallelLayout::validate(const ParallelConfig& c, const LayoutModelDims& d) {
  const std::pair<const char*, int> sizes[] = {
      {"--tp", c.tp}, {"--pp", c.pp}, {"--cp", c.cp}, {"--dcp", c.dcp}, {"--kvp", c.kvp}, {"--ep", c.ep}};
  for (const auto& [flag, v] : sizes)
    if (v < 1) return invalid_argument(std::string(flag) + " " + str(v) + " must be at least 1");
  const int64_t world = int64_t{c.tp} * c.pp * c.cp * c.kvp;
  if (c.world_size != 0 && c.world_size != world)
    return invalid_argument("world size " + str(c.world_size) + " does not match tp·pp·cp·kvp = " +
                            str(c.tp) + "·" + str(c.pp) + "·" + str(c.cp) + "·" + str(c.kvp) + " = " +
                            str(world) + " (DCP needs no ranks of its own: it lives inside the TP group)");
  if (c.block_size < 1) return invalid_argument("block size " + str(c.block_size) + " must be at least 1");

  const int64_t h = d.num_kv_heads;
  if (d.num_heads > 0 && d.num_heads % c.tp != 0)
    return invalid_argument("--tp " + str(c.tp) + " must divide the model's " + str(d.num_heads) +
                            " query heads (each TP rank takes an equal share)");
  if (h > 0 && c.tp <= h && h % c.tp != 0)
    return invalid_argument("--tp " + str(c.tp) + " must divide the model's " + str(h) +
                            " kv heads when tp <= H (each TP rank takes an equal share)");
  if (h > 0 && c.tp > h && c.tp % h != 0)
    return invalid_argument("--tp " + str(c.tp) + " must be a multiple of the model's " + str(h) +
                            " kv heads when tp > H (each kv head is replicated on tp/H ranks)");
  LONGCTX_RETURN_IF_ERROR(validate_helix(c, d));

  if (c.tp % c.dcp != 0)
    return invalid_argument("--dcp " + str(c.dcp) + " must divide --tp " + str(c.tp) +
                            " (the DCP group is a subgroup of the TP group)");
  if (c.dcp > 1) {
    if (h <= 0) return invalid_argument("--dcp " + str(c.dcp) + " needs the model's number of kv heads");
    const int64_t replicas = c.tp > h ? c.tp / h : 1;
    if (c.dcp > replicas)
      return invalid_argument("--dcp " + str(c.dcp) + " must lie in [1, tp/H] = [1, " + str(replicas) +
                              "] (tp " + str(c.tp) + ", H " + str(h) +
                              " kv heads): DCP shards only the KV that TP replicates");
    if (replicas % c.dcp != 0)
      return invalid_argument("--dcp " + str(c.dcp) + " must divide tp/H = " + str(replicas) +
                              " so that each DCP group holds one kv head");
  }
  if (c.dcp_interleave < 1 || (c.dcp_interleave > 1 && c.dcp_interleave % c.block_size != 0))
    return invalid_argument("--dcp-interleave " + str(c.dcp_interleave) +
                            " must be 1 (token round-robin) or a multiple of the block size " +
                            str(c.block_size));

  if (c.kvp > 1) {
    if (c.kvp_shard_tokens <= 0)
      return invalid_argument("--kvp " + str(c.kvp) + " needs --kvp-shard-tokens (tokens per KVP group)");
    if (c.kvp_shard_tokens < c.block_size)
      return invalid_argument("--kvp-shard-tokens " + str(c.kvp_shard_tokens) +
                              " is smaller than a KV block (" + str(c.block_size) + " tokens)");
    if (c.kvp_shard_tokens % c.block_size != 0)
      return invalid_argument("--kvp-shard-tokens " + str(c.kvp_shard_tokens) +
                              " must be a multiple of the block size " + str(c.block_size) +
                              " (a shard is whole blocks)");
  }
  if (d.num_layers > 0 && c.pp > d.num_layers)
    return invalid_argument("--pp " + str(c.pp) + " exceeds the model's " + str(d.num_layers) +
                            " layers (every stage needs at least one)");
  if (c.ep > 1) {
    const int64_t stage = int64_t{c.tp} * c.cp * c.kvp;
    if (stage % c.ep != 0)
      return invalid_argument("--ep " + str(c.ep) + " must divide the " + str(stage) +
                              " ranks of a pipeline stage (tp·cp·kvp = " + str(c.tp) + "·" + str(c.cp) + "·" +
                              str(c.kvp) + "): the EP group is made of the ranks that run attention");
    if (d.num_experts > 0 && d.num_experts % c.ep != 0)
      return invalid_argument("--ep " + str(c.ep) + " must divide the model's " + str(d.num_experts) +
                              " routed experts (each EP rank holds an equal contiguous share)");
  }
  return Status::ok();
}

Result<ParallelLayout> ParallelLayout::create(const ParallelConfig& cfg, const LayoutModelDims& dims) {
  LONGCTX_RETURN_IF_ERROR(validate(cfg, dims));
  ParallelLayout l;
  l.cfg_ = cfg;
  l.cfg_.world_size = l.world_size();
  l.dims_ = dims;
  return l;
}

RankCoords ParallelLayout::coords(int rank) const {
  RankCoords c;
  c.tp = rank % cfg_.tp;
  rank /= cfg_.tp;
  c.cp = rank % cfg_.cp;
  rank /= cfg_.cp;
  c.kvp = rank % cfg_.kvp;
  c.pp = rank / cfg_.kvp;
  c.dcp = c.tp % cfg_.dcp;
  return c;
}

int ParallelLayout::rank_of(const RankCoords& c) const {
  return c.tp + cfg_.tp * (c.cp + cfg_.cp * (c.kvp + cfg_.kvp * c.pp));
}

std::string ParallelLayout::to_string() const {
  std::string s = "tp=" + str(cfg_.tp) + " dcp=" + str(cfg_.dcp) + " cp=" + str(cfg_.cp) +
                  " kvp=" + str(cfg_.kvp) + " pp=" + str(cfg_.pp);
  if (cfg_.dcp > 1 && cfg_.dcp_interleave > 1) s += " dcp_interleave=" + str(cfg_.dcp_interleave);
  if (cfg_.kvp > 1) s += " kvp_shard_tokens=" + str(cfg_.kvp_shard_tokens);
  if (cfg_.ep > 1) s += " ep=" + str(cfg_.ep);
  if (cfg_.helix) s += " helix (ffn tp=" + str(helix_size()) + ")";
  return s;
}

ProcessGroup ParallelLayout::world_group() const {
  ProcessGroup g{"world", {}};
  for (int r = 0; r < world_size(); ++r) g.ranks.push_back(r);
  return g;
}

ProcessGroup ParallelLayout::tp_group(int rank) const {
  RankCoords c = coords(rank);
  ProcessGroup g{"tp(cp=" + str(c.cp) + ",kvp=" + str(c.kvp) + ",pp=" + str(c.pp) + ")", {}};
  for (c.tp = 0; c.tp < cfg_.tp; ++c.tp) g.ranks.push_back(rank_of(c));
  return g;
}

ProcessGroup ParallelLayout::dcp_group(int rank) const {
  RankCoords c = coords(rank);
  const int first = c.tp - c.dcp;
  ProcessGroup g{"dcp(tp=" + str(first) + ".." + str(first + cfg_.dcp - 1) + ",cp=" + str(c.cp) +
                     ",kvp=" + str(c.kvp) + ",pp=" + str(c.pp) + ")",
                 {}};
  for (c.tp = first; c.tp < first + cfg_.dcp; ++c.tp) g.ranks.push_back(rank_of(c));
  return g;
}

ProcessGroup ParallelLayout::cp_group(int rank) const {
  RankCoords c = coords(rank);
  ProcessGroup g{"cp(tp=" + str(c.tp) + ",kvp=" + str(c.kvp) + ",pp=" + str(c.pp) + ")", {}};
  for (c.cp = 0; c.cp < cfg_.cp; ++c.cp) g.ranks.push_back(rank_of(c));
  return g;
}

ProcessGroup ParallelLayout::kvp_group(int rank) const {
  RankCoords c = coords(rank);
  ProcessGroup g{"kvp(tp=" + str(c.tp) + ",cp=" + str(c.cp) + ",pp=" + str(c.pp) + ")", {}};
  for (c.kvp = 0; c.kvp < cfg_.kvp; ++c.kvp) g.ranks.push_back(rank_of(c));
  return g;
}

ProcessGroup ParallelLayout::pp_group(int rank) const {
  RankCoords c = coords(rank);
  ProcessGroup g{"pp(tp=" + str(c.tp) + ",cp=" + str(c.cp) + ",kvp=" + str(c.kvp) + ")", {}};
  for (c.pp = 0; c.pp < cfg_.pp; ++c.pp) g.ranks.push_back(rank_of(c));
  return g;
}

int ParallelLayout::ep_index(int rank) const {
  const int stage_size = cfg_.tp * cfg_.cp * cfg_.kvp;
  return (rank % stage_size) % cfg_.ep;
}

ProcessGroup ParallelLayout::ep_group(int rank) const {
  // A stage's ranks are consecutive (pp is outermost), so an EP group is a run of ep.
  const int first = rank - ep_index(rank);
  ProcessGroup g{"ep(ranks=" + str(first) + ".." + str(first + cfg_.ep - 1) + ")", {}};
  for (int r = first; r < first + cfg_.ep; ++r) g.ranks.push_back(r);
  return g;
}

ProcessGroup ParallelLayout::helix_group(int rank) const {
  RankCoords c = coords(rank);
  ProcessGroup g{"helix(cp=" + str(c.cp) + ",pp=" + str(c.pp) + ")", {}};
  for (c.kvp = 0; c.kvp < cfg_.kvp; ++c.kvp)
    for (c.tp = 0; c.tp < cfg_.tp; ++c.tp) g.ranks.push_back(rank_of(c));
  return g;
}

int ParallelLayout::helix_index(int rank) const {
  const RankCoords c = coords(rank);
  return c.tp + cfg_.tp * c.kvp;
}

int64_t ParallelLayout::num_local_kv_heads() const {
  return cfg_.tp <= dims_.num_kv_heads ? dims_.num_kv_heads / cfg_.tp : 1;
}

int64_t ParallelLayout::first_kv_head(int tp_rank) const {
  if (cfg_.tp <= dims_.num_kv_heads) return tp_rank * num_local_kv_heads();
  return tp_rank / kv_head_replication();
}

int64_t ParallelLayout::kv_head_replication() const {
  return cfg_.tp > dims_.num_kv_heads && dims_.num_kv_heads > 0 ? cfg_.tp / dims_.num_kv_heads : 1;
}

int64_t ParallelLayout::kv_duplication() const {
  return std::max<int64_t>(1, kv_head_replication() / cfg_.dcp);
}

int64_t ParallelLayout::first_layer(int stage) const {
  const int64_t base = dims_.num_layers / cfg_.pp, extra = dims_.num_layers % cfg_.pp;
  return stage * base + std::min<int64_t>(stage, extra);
}

int64_t ParallelLayout::end_layer(int stage) const { return first_layer(stage + 1); }

int ParallelLayout::kvp_rank_of_token(int64_t pos) const {
  if (cfg_.kvp == 1) return 0;
  return static_cast<int>(std::min<int64_t>(pos / cfg_.kvp_shard_tokens, cfg_.kvp - 1));
}

int ParallelLayout::dcp_rank_of_token(int64_t pos) const {
  return static_cast<int>((pos / cfg_.dcp_interleave) % cfg_.dcp);
}

int ParallelLayout::cp_rank_of_new_token(int64_t i, int64_t num_new, int64_t start) const {
  const int64_t cp = cfg_.cp;
  if (cp == 1) return 0;
  if (num_new < 2 * cp) return static_cast<int>((start + i) % cp);
  // Part k covers [k·n / 2cp, (k+1)·n / 2cp): k = the largest with k·n / 2cp <= i.
  const int64_t k = ((i + 1) * 2 * cp - 1) / num_new;
  return static_cast<int>(k < cp ? k : 2 * cp - 1 - k);
}

bool ParallelLayout::stores_new_token(int rank, int64_t i, int64_t num_new, int64_t start) const {
  const RankCoords c = coords(rank);
  const int64_t pos = start + i;
  return c.cp == cp_rank_of_new_token(i, num_new, start) && c.kvp == kvp_rank_of_token(pos) &&
         c.dcp == dcp_rank_of_token(pos);
}

}  // namespace longctx
