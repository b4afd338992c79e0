#include "exec/model_runner.h"

namespace longctx {

Result<StepLogits> ModelRunner::run(const StepPlan& plan, const RequestLookup& request,
                                    const RequestPredicate& all_positions, const DeviceSamplingLookup&) {
  ForwardBatch batch;
  StepLogits out;
  const int64_t block_size = cache_.shape().block_size;
  for (const ScheduledChunk& c : plan.chunks) {
    const Request& r = request(c.request_id);
    const int64_t first_token = batch.num_tokens();
    batch.add_sequence(r.token_ids.data() + c.start, c.num_tokens, c.start, c.block_table, block_size, false);
    ChunkRows rows;
    if (all_positions(c.request_id)) {
      rows.first_row = static_cast<int64_t>(batch.logit_rows.size());
      rows.num_rows = c.num_tokens;
      rows.all_positions = true;
      for (int64_t i = 0; i < c.num_tokens; ++i) batch.logit_rows.push_back(first_token + i);
    } else if (c.sample) {
      rows.first_row = static_cast<int64_t>(batch.logit_rows.size());
      rows.num_rows = 1;
      batch.logit_rows.push_back(first_token + c.num_tokens - 1);
    }
    out.rows.push_back(rows);
  }
  LONGCTX_ASSIGN_OR_RETURN(out.logits, model_.forward(batch, cache_));
  return out;
}

}  // namespace longctx
