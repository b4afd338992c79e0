#include "kv/block_pool.h"

namespace longctx {

BlockPool::BlockPool(int32_t num_blocks, bool enable_prefix_caching)
    : blocks_(static_cast<size_t>(num_blocks < 1 ? 1 : num_blocks)), prefix_caching_(enable_prefix_caching) {
  blocks_[0].ref_count = 1;  // the null block is permanently "in use" and never counted
  for (int32_t id = 1; id < static_cast<int32_t>(blocks_.size()); ++id) push_free_back(id);
}

void BlockPool::push_free_back(int32_t id) {
  Block& b = blocks_[static_cast<size_t>(id)];
  b.prev = free_tail_;
  b.next = -1;
  b.in_free_list = true;
  if (free_tail_ >= 0) blocks_[static_cast<size_t>(free_tail_)].next = id;
  else free_head_ = id;
  free_tail_ = id;
  ++num_free_;
}

void BlockPool::unlink_free(int32_t id) {
  Block& b = blocks_[static_cast<size_t>(id)];
  if (b.prev >= 0) blocks_[static_cast<size_t>(b.prev)].next = b.next;
  else free_head_ = b.next;
  if (b.next >= 0) blocks_[static_cast<size_t>(b.next)].prev = b.prev;
  else free_tail_ = b.prev;
  b.prev = b.next = -1;
  b.in_free_list = false;
  --num_free_;
}

std::optional<std::vector<int32_t>> BlockPool::allocate(int64_t n) {
  if (n > num_free_) return std::nullopt;
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int32_t id = free_head_;
    unlink_free(id);
    Block& b = blocks_[static_cast<size_t>(id)];
    if (b.hash) {  // evict: the least recently freed cached block goes first
      auto it = cached_.find(*b.hash);
      if (it != cached_.end() && it->second == id) cached_.erase(it);
      b.hash.reset();
    }
    b.ref_count = 1;
    out.push_back(id);
  }
  return out;
}

void BlockPool::free(std::span<const int32_t> ids) {
  for (int32_t id : ids) {
    if (id <= 0) continue;
    Block& b = blocks_[static_cast<size_t>(id)];
    if (--b.ref_count == 0) push_free_back(id);
  }
}

void BlockPool::touch(std::span<const int32_t> ids) {
  for (int32_t id : ids) {
    Block& b = blocks_[static_cast<size_t>(id)];
    if (b.ref_count == 0) unlink_free(id);
    ++b.ref_count;
  }
}

std::optional<int32_t> BlockPool::lookup(BlockHash h) const {
  if (!prefix_caching_) return std::nullopt;
  auto it = cached_.find(h);
  if (it == cached_.end()) return std::nullopt;
  return it->second;
}

void BlockPool::cache_block(int32_t id, BlockHash h) {
  if (!prefix_caching_ || id <= 0) return;
  Block& b = blocks_[static_cast<size_t>(id)];
  if (b.hash) return;
  if (cached_.emplace(h, id).second) b.hash = h;
}

bool BlockPool::check_invariants() const {
  int64_t free_count = 0, walked = 0;
  for (size_t id = 1; id < blocks_.size(); ++id) {
    const Block& b = blocks_[id];
    if (b.ref_count < 0) return false;
    if ((b.ref_count == 0) != b.in_free_list) return false;
    free_count += b.in_free_list ? 1 : 0;
    if (b.hash) {
      auto it = cached_.find(*b.hash);
      if (it == cached_.end() || it->second != static_cast<int32_t>(id)) return false;
    }
  }
  for (int32_t id = free_head_, prev = -1; id >= 0; prev = id, id = blocks_[static_cast<size_t>(id)].next) {
    if (blocks_[static_cast<size_t>(id)].prev != prev || ++walked > free_count) return false;
  }
  for (const auto& [h, id] : cached_)
    if (!blocks_[static_cast<size_t>(id)].hash || *blocks_[static_cast<size_t>(id)].hash != h) return false;
  return free_count == num_free_ && walked == num_free_ && num_used_blocks() + num_free_ == num_total_blocks();
}

}  // namespace longctx
