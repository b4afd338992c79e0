// The part of paged-attention parameters that a ForwardBatch and a layer's cache decide
// (sequence layout, block tables, K/V memory); callers add q, out, heads and scale.
#pragma once

#include "model/forward_batch.h"
#include "model/paged_kv_cache.h"
#include "ops/cpu/paged_attention.h"

namespace longctx {

inline cpu::PagedAttentionParams batch_attention_params(const ForwardBatch& batch, PagedKVCache& cache,
                                                        int64_t layer) {
  cpu::PagedAttentionParams ap;
  ap.k_cache = cache.k(layer);
  ap.v_cache = cache.v(layer);  // the same memory as K for MLA's shared latent
  ap.block_size = cache.shape().block_size;
  ap.num_seqs = batch.num_seqs();
  ap.q_begin = batch.q_begin.data();
  ap.context_lens = batch.context_lens.data();
  ap.block_tables = batch.block_tables.data();
  ap.block_table_stride = batch.block_table_stride;
  ap.causal = true;
  return ap;
}

}  // namespace longctx
