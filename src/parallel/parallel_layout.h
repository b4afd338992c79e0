// ParallelLayout: how the ranks of one model instance are arranged (DESIGN.md §3).
// Built once from the flags (--tp --pp --cp --dcp --kvp, --dcp-interleave,
// --kvp-shard-tokens) and the model's head counts, validated with messages that name
// the flag and the rule; then a pure value that names every process group and says
// which rank holds which heads, layers and tokens. Decides; never computes.
//
// Rank order, innermost first: tp, cp, kvp, pp —
//   rank = tp_rank + tp · (cp_rank + cp · (kvp_rank + kvp · pp_rank)).
// So a TP group is a run of consecutive ranks (one host's NVLink island on a GPU
// cluster), and the DCP subgroup is a run of `dcp` consecutive ranks inside it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace longctx {

// The flags, as parsed. world_size 0: tp·pp·cp·kvp (no check).
struct ParallelConfig {
  int tp = 1, pp = 1, cp = 1, dcp = 1, kvp = 1;
  // --ep: expert parallelism. Needs no ranks of its own (like DCP): the EP group is `ep`
  // consecutive ranks of one pipeline stage (rank order below, tp innermost), so ep
  // divides tp·cp·kvp; the routed experts are split contiguously over it (ep divides
  // them) and replicated over the stage's tp·cp·kvp/ep EP groups. See ep_group.
  int ep = 1;
  int64_t dcp_interleave = 1;    // --dcp-interleave: 1 (token round-robin) or a multiple of block_size
  int64_t kvp_shard_tokens = 0;  // --kvp-shard-tokens: tokens per KVP group; needed when kvp > 1
  int64_t block_size = 16;       // KV block size in tokens
  int world_size = 0;
  // --helix: attention on kvp × tp ranks (KV sharded over KVP as above, heads over
  // TPA = tp ≤ H), then the same kvp·tp ranks as one TP group for o_proj and the FFN.
  // So `--helix --kvp K --tp T` is attention KVP = K × TPA = T and FFN TP = K·T; the
  // world stays tp·pp·cp·kvp. See helix_group and docs/parallelism.md.
  bool helix = false;
};

// What of the model the layout depends on. 0 = unknown (that rule is not checked).
struct LayoutModelDims {
  int64_t num_heads = 0;     // query heads (tp must divide them)
  int64_t num_kv_heads = 0;  // H of DESIGN.md §3
  int64_t num_layers = 0;    // pp must not exceed them
  int64_t num_experts = 0;   // routed experts of a MoE model (ep must divide them); 0 = dense
};

struct RankCoords {
  int tp = 0, cp = 0, kvp = 0, pp = 0;
  int dcp = 0;  // tp % dcp: the rank's place in its DCP subgroup
};

// A named set of global ranks; a rank's index in `ranks` is its rank in the group.
struct ProcessGroup {
  std::string name;  // e.g. "tp(cp=0,kvp=1,pp=0)"
  std::vector<int> ranks;
  int size() const { return static_cast<int>(ranks.size()); }
  int index_of(int global_rank) const;  // -1 when not a member
};

class ParallelLayout {
 public:
  ParallelLayout() = default;  // one rank, nothing split
  // Validates (see validate) and builds.
  static Result<ParallelLayout> create(const ParallelConfig& cfg, const LayoutModelDims& dims);
  // Every rule, in the order a user would fix them; the message names the flag.
  static Status validate(const ParallelConfig& cfg, const LayoutModelDims& dims);

  const ParallelConfig& config() const { return cfg_; }
  const LayoutModelDims& dims() const { return dims_; }
  int world_size() const { return cfg_.tp * cfg_.cp * cfg_.kvp * cfg_.pp; }
  RankCoords coords(int rank) const;
  int rank_of(const RankCoords& c) const;  // c.dcp is ignored (implied by c.tp)
  std::string to_string() const;           // "tp=4 dcp=2 cp=1 kvp=1 pp=1"

  // Process groups of `rank`.
  ProcessGroup world_group() const;
  ProcessGroup tp_group(int rank) const;   // same cp, kvp, pp
  ProcessGroup dcp_group(int rank) const;  // dcp consecutive ranks of the tp group
  ProcessGroup cp_group(int rank) const;   // same tp, kvp, pp
  ProcessGroup kvp_group(
      int rank) const;                    // same tp, cp, pp: the ranks holding the same heads of other shards
  ProcessGroup pp_group(int rank) const;  // same tp, cp, kvp: stage 0 .. pp-1
  // EP: the `ep` consecutive ranks of rank's stage that hold together one copy of every
  // routed expert; member i holds experts [first_expert(i), first_expert(i + 1)).
  ProcessGroup ep_group(int rank) const;
  int ep_index(int rank) const;  // rank's index in its EP group
  int64_t num_local_experts() const { return dims_.num_experts / cfg_.ep; }
  int64_t first_expert(int ep_index) const { return ep_index * num_local_experts(); }
  // Helix: the kvp·tp ranks of one stage (same cp, pp), in rank order, so a rank's index
  // in it is tp + tp·kvp. Attention runs per KVP/TPA group; o_proj and the FFN run
  // Megatron-style over this whole group.
  ProcessGroup helix_group(int rank) const;
  int helix_size() const { return cfg_.tp * cfg_.kvp; }
  int helix_index(int rank) const;

  // Heads. Query heads split evenly over tp; kv heads too when tp <= H, else each kv
  // head is replicated on tp/H consecutive ranks.
  int64_t num_local_q_heads() const { return dims_.num_heads / cfg_.tp; }
  int64_t first_q_head(int tp_rank) const { return tp_rank * num_local_q_heads(); }
  int64_t num_local_kv_heads() const;
  int64_t first_kv_head(int tp_rank) const;
  // How many ranks of a TP group hold each kv head (tp/H when tp > H, else 1), and how
  // many copies of each token's K/V exist after DCP shards them: tp / (H · dcp), at least 1.
  int64_t kv_head_replication() const;
  int64_t kv_duplication() const;
  // Helix: after the all-to-all over the KVP group, KVP rank k owns the merged output
  // of the TPA rank's query heads [helix_first_head(k), helix_first_head(k + 1)) (local
  // indices, 0 .. Hq/tp); shares differ by at most one head when kvp does not divide Hq/tp.
  int64_t helix_first_head(int kvp_rank) const {
    return split_point(num_local_q_heads(), cfg_.kvp, kvp_rank);
  }
  // Part i of `total` items split into `parts` shares differing by at most one: [p(i), p(i + 1)).
  static int64_t split_point(int64_t total, int64_t parts, int64_t i) { return i * total / parts; }

  // Layers of pipeline stage `stage`: [begin, end), the first L % pp stages one larger.
  int64_t first_layer(int stage) const;
  int64_t end_layer(int stage) const;

  // Token placement of a sequence's KV (DESIGN.md §3): token n lives on KVP group
  // min(n / kvp_shard_tokens, kvp − 1), on the CP rank that computed it and, inside
  // its TP group, on DCP rank (n / dcp_interleave) mod dcp.
  int kvp_rank_of_token(int64_t pos) const;
  int dcp_rank_of_token(int64_t pos) const;
  // CP: the new tokens of one sequence in a step are computed (and their KV kept) on
  // the ranks of the CP group. A chunk of num_new ≥ 2·cp tokens is cut into 2·cp equal
  // parts and rank r takes parts r and 2·cp − 1 − r (zig-zag: causal work balanced); a
  // shorter chunk (a decode) goes round-robin by position. i indexes the chunk.
  int cp_rank_of_new_token(int64_t i, int64_t num_new, int64_t start) const;
  // Whether `rank` keeps the KV of new token i of a chunk [start, start + num_new).
  bool stores_new_token(int rank, int64_t i, int64_t num_new, int64_t start) const;

 private:
  ParallelConfig cfg_;
  LayoutModelDims dims_;
};

}  // namespace longctx
