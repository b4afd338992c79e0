// The exchanges that turn partial attention — an output and its LSE per query head over
// the keys one rank holds — into exact attention (DESIGN.md §3, docs/parallelism.md),
// shared by the dense and the MLA paths of ShardedDenseModel:
//  - DCP: the group's queries all-gathered before attention; after it, one all-to-all
//    hands each member every member's partial state of its own heads.
//  - KVP: the group members' partial states of the same heads all-gathered.
//  - CP: each rank's keys of a sequence passed round the ring and attended over there.
// Every merge runs in member order, so all ranks get the same bits and a layout run is
// bitwise repeatable.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "parallel/communicator.h"

namespace longctx {

// Merges `count` partial states of `rows` rows of d into o [rows, d] / lse [rows], in
// member order: member j's outputs [rows, d] at all + j·stride, its LSEs [rows] at
// all + j·stride + lse_offset. o/lse must not overlap `all`.
void merge_partial_states(const float* all, int count, int64_t stride, int64_t lse_offset, int64_t rows,
                          int64_t d, float* o, float* lse);

// DCP: this rank's queries q [t, hq, d] (token stride q_stride) gathered over the group:
// out [t, dcp·hq, d], member j's heads at j·hq.
void dcp_gather_queries(Communicator& dcp, const float* q, int64_t q_stride, int64_t t, int64_t hq, int64_t d,
                        float* out);

// DCP: o [t, dcp·hq, d] / lse [t, dcp·hq] are this rank's partial states of all the
// group's heads over its own keys. One all-to-all gives member j every member's state of
// j's heads, merged into mo [t·hq, d] / ml [t·hq] (this rank's heads, rows in token order).
void dcp_exchange_partial_states(Communicator& dcp, const float* o, const float* lse, int64_t t, int64_t hq,
                                 int64_t d, float* mo, float* ml);

// KVP: every member holds the partial state mo [rows, d] / ml [rows] of the same heads
// over another shard of the tokens; replaces it with the merge of all members' states.
void kvp_merge_partial_states(Communicator& kvp, float* mo, float* ml, int64_t rows, int64_t d);

// CP ring messages are floats; counts (int64, two floats) and positions (int32, one
// float each) travel as bit patterns, so nothing is rounded and positions stay exact
// beyond 2^24.
void ring_put_i64(std::vector<float>& msg, int64_t v);
int64_t ring_get_i64(const float* p);
void ring_put_positions(std::vector<float>& msg, const int32_t* positions, int64_t n);

// CP: `block` (this rank's message) goes round the ring. Each block arriving from another
// rank is passed on before `attend` reads it (its transfer overlaps the attention);
// attend writes its partial states into po [rows, d] / pl [rows], merged into o / lse
// by LSE in ring order.
void ring_attend(Communicator& ring, std::vector<float> block, int64_t rows, int64_t d,
                 const std::function<void(const float* block, float* po, float* pl)>& attend, float* o,
                 float* lse);

}  // namespace longctx
