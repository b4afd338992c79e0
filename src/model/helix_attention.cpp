#include "model/helix_attention.h"

#include <algorithm>
#include <cstring>

#include "model/partial_attention_exchange.h"

namespace longctx {

Tensor helix_exchange(const ParallelLayout& layout, int kvp_rank, const float* o, const float* lse, int64_t t,
                      int64_t d, Communicator& kvp) {
  const int members = kvp.size();
  const int64_t hq = layout.num_local_q_heads();
  // Member m's heads: [first(m), first(m + 1)); shares differ by at most one head, so
  // every member's message is padded to the largest (all_to_all takes one count).
  const auto first = [&](int m) { return layout.helix_first_head(m); };
  int64_t widest = 0;
  for (int m = 0; m < members; ++m) widest = std::max(widest, first(m + 1) - first(m));
  const int64_t o_part = t * widest * d;
  const int64_t chunk = o_part + t * widest;  // [t, share, d] outputs, then [t, share] LSEs

  Tensor send = Tensor::zeros({members, chunk}, DType::kF32);
  for (int m = 0; m < members; ++m) {
    const int64_t h0 = first(m), share = first(m + 1) - h0;
    float* dst = send.data<float>() + m * chunk;
    for (int64_t i = 0; i < t; ++i) {
      std::memcpy(dst + i * share * d, o + (i * hq + h0) * d, static_cast<size_t>(share * d) * sizeof(float));
      std::memcpy(dst + o_part + i * share, lse + i * hq + h0, static_cast<size_t>(share) * sizeof(float));
    }
  }
  Tensor recv = Tensor::empty({members, chunk}, DType::kF32);
  kvp.all_to_all(send.data<float>(), chunk, recv.data<float>());

  // recv chunk j: KVP rank j's partial state (over its token shard) of this rank's heads.
  const int64_t share = first(kvp_rank + 1) - first(kvp_rank), rows = t * share;
  Tensor out = Tensor::empty({t, share, d}, DType::kF32);
  Tensor out_lse = Tensor::empty({rows}, DType::kF32);
  merge_partial_states(recv.data<float>(), members, chunk, o_part, rows, d, out.data<float>(),
                       out_lse.data<float>());
  return out;
}

}  // namespace longctx
