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

void ring_put_i64(std::vector<float>& msg, int64_t v) {
  float f[2];
  std::memcpy(f, &v, sizeof v);
  msg.insert(msg.end(), f, f + 2);
}

int64_t ring_get_i64(const float* p) {
  int64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

void ring_put_positions(std::vector<float>& msg, const int32_t* positions, int64_t n) {
  const size_t at = msg.size();
  msg.resize(at + static_cast<size_t>(n));
  if (n > 0) std::memcpy(msg.data() + at, positions, static_cast<size_t>(n) * 4);
}

void ring_attend(Communicator& ring, std::vector<float> block, int64_t rows, int64_t d,
                 const std::function<void(const float* block, float* po, float* pl)>& attend, float* o,
                 float* lse) {
  const int n = ring.size(), next = (ring.rank() + 1) % n, prev = (ring.rank() + n - 1) % n;
  const auto send_block = [&](const std::vector<float>& b) {
    float header[2];
    const int64_t size = static_cast<int64_t>(b.size());
    std::memcpy(header, &size, sizeof size);
    ring.send(header, 2, next);
    ring.send(b.data(), size, next);
  };
  std::vector<float> po(static_cast<size_t>(rows * d)), pl(static_cast<size_t>(rows));
  send_block(block);
  for (int hop = 1; hop < n; ++hop) {
    float header[2];
    ring.recv(header, 2, prev);
    block.resize(static_cast<size_t>(ring_get_i64(header)));
    ring.recv(block.data(), static_cast<int64_t>(block.size()), prev);
    if (hop + 1 < n) send_block(block);
    attend(block.data(), po.data(), pl.data());
    cpu::merge_attention_states(o, lse, po.data(), pl.data(), o, lse, rows, d);
  }
}

}  // namespace longctx
