#include "model/forward_batch.h"

#include <algorithm>

namespace longctx {

void ForwardBatch::add_sequence(const int32_t* ids, int64_t num_new, int64_t start,
                                const std::vector<int32_t>& block_table, int64_t block_size, bool logits_for_last) {
  if (q_begin.empty()) q_begin.push_back(0);
  const int64_t first = num_tokens();
  for (int64_t i = 0; i < num_new; ++i) {
    const int64_t pos = start + i;
    token_ids.push_back(ids[i]);
    positions.push_back(static_cast<int32_t>(pos));
    slots.push_back(int64_t{block_table[static_cast<size_t>(pos / block_size)]} * block_size + pos % block_size);
  }
  q_begin.push_back(first + num_new);
  context_lens.push_back(start + num_new);
  // Re-pad every row when this table is the widest so far.
  const int64_t width = static_cast<int64_t>(block_table.size());
  if (width > block_table_stride) {
    std::vector<int32_t> wider(static_cast<size_t>(num_seqs() * width), 0);
    for (int64_t s = 0; s + 1 < num_seqs(); ++s)
      std::copy_n(block_tables.begin() + s * block_table_stride, block_table_stride, wider.begin() + s * width);
    block_tables = std::move(wider);
    block_table_stride = width;
  } else {
    block_tables.resize(static_cast<size_t>(num_seqs() * block_table_stride), 0);
  }
  std::copy(block_table.begin(), block_table.end(), block_tables.begin() + (num_seqs() - 1) * block_table_stride);
  if (logits_for_last && num_new > 0) logit_rows.push_back(first + num_new - 1);
}

}  // namespace longctx
