#include "model/partial_attention_exchange.h"

#include <cstring>
#include <vector>

#include "ops/cpu/attention.h"

namespace longctx {
namespace {

void copy_floats(float* dst, const float* src, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

}  // namespace

void merge_partial_states(const float* all, int count, int64_t stride, int64_t lse_offset, int64_t rows,
                          int64_t d, float* o, float* lse) {
  copy_floats(o, all, rows * d);
  copy_floats(lse, all + lse_offset, rows);
  for (int j = 1; j < count; ++j) {
    const float* src = all + j * stride;
    cpu::merge_attention_states(o, lse, src, src + lse_offset, o, lse, rows, d);
  }
}

void dcp_gather_queries(Communicator& dcp, const float* q, int64_t q_stride, int64_t t, int64_t hq, int64_t d,
                        float* out) {
  const int members = dcp.size();
  const int64_t width = hq * d, nh = members * hq;
  std::vector<float> mine;
  const float* send = q;
  if (q_stride != width) {  // rows of a wider buffer (q beside k and v): pack them
    mine.resize(static_cast<size_t>(t * width));
    for (int64_t i = 0; i < t; ++i) copy_floats(mine.data() + i * width, q + i * q_stride, width);
    send = mine.data();
  }
  std::vector<float> all(static_cast<size_t>(members * t * width));
  dcp.all_gather(send, t * width, all.data());
  for (int j = 0; j < members; ++j)
    for (int64_t i = 0; i < t; ++i)
      copy_floats(out + (i * nh + j * hq) * d, all.data() + (j * t + i) * width, width);
}

void dcp_exchange_partial_states(Communicator& dcp, const float* o, const float* lse, int64_t t, int64_t hq,
                                 int64_t d, float* mo, float* ml) {
  const int members = dcp.size();
  const int64_t nh = members * hq, rows = t * hq, chunk = rows * d + rows;
  std::vector<float> send(static_cast<size_t>(members * chunk)), recv(send.size());
  for (int j = 0; j < members; ++j) {
    float* dst = send.data() + j * chunk;
    for (int64_t i = 0; i < t; ++i) {
      copy_floats(dst + i * hq * d, o + (i * nh + j * hq) * d, hq * d);
      copy_floats(dst + rows * d + i * hq, lse + i * nh + j * hq, hq);
    }
  }
  dcp.all_to_all(send.data(), chunk, recv.data());
  merge_partial_states(recv.data(), members, chunk, rows * d, rows, d, mo, ml);
}

void kvp_merge_partial_states(Communicator& kvp, float* mo, float* ml, int64_t rows, int64_t d) {
  const int members = kvp.size();
  const int64_t chunk = rows * d + rows;
  std::vector<float> mine(static_cast<size_t>(chunk)), all(static_cast<size_t>(members * chunk));
  copy_floats(mine.data(), mo, rows * d);
  copy_floats(mine.data() + rows * d, ml, rows);
  kvp.all_gather(mine.data(), chunk, all.data());
  merge_partial_states(all.data(), members, chunk, rows * d, rows, d, mo, ml);
}

}  // namespace longctx
