#include "exec/cuda_step_rows.h"

#include <optional>

namespace longctx {

CudaStepRows build_cuda_step_rows(const StepPlan& plan, const RequestLookup& request,
                                  const RequestPredicate& all_positions, const DeviceSamplingLookup& device_sample,
                                  int64_t block_size,
                                  const std::function<bool(const DeviceSampling&)>& samples_on_device) {
  CudaStepRows s;
  constexpr cuda::SamplingRow kGreedy{0, -1, 1, 0, 0, 0};
  for (const ScheduledChunk& c : plan.chunks) {
    const Request& r = request(c.request_id);
    const int64_t first_token = s.batch.num_tokens();
    s.batch.add_sequence(r.token_ids.data() + c.start, c.num_tokens, c.start, c.block_table, block_size, false);
    ChunkRows rows;
    int64_t device_row = -1;
    if (all_positions(c.request_id)) {
      rows.first_row = static_cast<int64_t>(s.host_rows.size());
      rows.num_rows = c.num_tokens;
      rows.all_positions = true;
      for (int64_t i = 0; i < c.num_tokens; ++i) {
        s.host_rows.push_back(static_cast<int64_t>(s.batch.logit_rows.size()));
        s.batch.logit_rows.push_back(first_token + i);
      }
    } else if (c.sample) {
      const std::optional<DeviceSampling> ds = device_sample ? device_sample(c.request_id) : std::nullopt;
      if (ds && samples_on_device(*ds)) {
        device_row = static_cast<int64_t>(s.batch.logit_rows.size());
        rows.sampled_on_device = true;
        s.needs_draw = s.needs_draw || !is_argmax(*ds);
        s.sampling.resize(s.batch.logit_rows.size() + 1, kGreedy);
        s.sampling.back() = {ds->temperature, ds->top_k, ds->top_p, ds->min_p, ds->seed, ds->offset};
      } else {
        rows.first_row = static_cast<int64_t>(s.host_rows.size());
        rows.num_rows = 1;
        s.host_rows.push_back(static_cast<int64_t>(s.batch.logit_rows.size()));
      }
      s.batch.logit_rows.push_back(first_token + c.num_tokens - 1);
    }
    s.device_rows.push_back(device_row);
    s.out.rows.push_back(rows);
  }
  // Rows not drawn on the device (host rows, prompt rows) get greedy parameters: their ids are unused.
  s.sampling.resize(s.batch.logit_rows.size(), kGreedy);
  return s;
}

int64_t take_device_rows(CudaStepRows& s, const cuda::CudaDenseModel::RowsOut& res) {
  int64_t n = 0;
  for (size_t i = 0; i < s.out.rows.size(); ++i) {
    if (s.device_rows[i] < 0) continue;
    const auto row = static_cast<size_t>(s.device_rows[i]);
    s.out.rows[i].token = res.tokens[row];
    if (!res.logprobs.empty()) s.out.rows[i].logprob = res.logprobs[row];
    ++n;
  }
  return n;
}

}  // namespace longctx
