// ForwardBatch: one step's worth of tokens from many sequences, as the model runner
// lays it out for a single forward pass (the tensor-side image of a StepPlan). A
// sequence contributes a contiguous run of new tokens: a whole prompt, a prefill
// chunk over its cached prefix, or one decode token — the same thing to the model.
#pragma once

#include <cstdint>
#include <vector>

namespace longctx {

struct ForwardBatch {
  std::vector<int32_t> token_ids;  // all new tokens, sequence after sequence
  std::vector<int32_t> positions;  // position of each new token in its sequence
  std::vector<int64_t> slots;      // KV-cache slot of each new token
  std::vector<int64_t> q_begin;    // [num_seqs + 1]: sequence s owns tokens [q_begin[s], q_begin[s+1])
  std::vector<int64_t> context_lens;  // [num_seqs]: tokens in the cache after this step
  std::vector<int32_t> block_tables;  // [num_seqs, block_table_stride], padded with 0 (the null block)
  int64_t block_table_stride = 0;
  std::vector<int64_t> logit_rows;  // indices into token_ids whose logits come back, in this order

  int64_t num_tokens() const { return static_cast<int64_t>(token_ids.size()); }
  int64_t num_seqs() const { return static_cast<int64_t>(context_lens.size()); }

  // Appends a sequence: `ids` at positions start.. with the given block table.
  // `logits_for_last` asks for the logits of its last new token.
  void add_sequence(const int32_t* ids, int64_t num_new, int64_t start, const std::vector<int32_t>& block_table,
                    int64_t block_size, bool logits_for_last);
};

}  // namespace longctx
