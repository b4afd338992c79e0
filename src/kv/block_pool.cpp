#include "kv/block_pool.h"

#include <algorithm>
#include <cassert>

namespace longctx {

BlockPool::BlockPool(int32_t num_blocks, bool enable_prefix_caching)
    : blocks_(static_cast<size_t>(num_blocks < 1 ? 1 : num_blocks)), prefix_caching_(enable_prefix_caching) {
  at(kNullBlock).ref_count = 1;  // permanently "in use", outside every count
  for (int32_t id = 1; id < static_cast<int32_t>(blocks_.size()); ++id) push_free_back(id);
}

void BlockPool::push_free_back(int32_t id) {
  Block& b = at(id);
  b.prev = free_tail_;
  b.next = -1;
  b.in_free_list = true;
  if (free_tail_ >= 0)
    at(free_tail_).next = id;
  else
    free_head_ = id;
  free_tail_ = id;
  ++num_free_;
}

void BlockPool::unlink_free(int32_t id) {
  Block& b = at(id);
  if (b.prev >= 0)
    at(b.prev).next = b.next;
  else
    free_head_ = b.next;
  if (b.next >= 0)
    at(b.next).prev = b.prev;
  else
    free_tail_ = b.prev;
  b.prev = b.next = -1;
  b.in_free_list = false;
  --num_free_;
}

std::optional<std::vector<int32_t>> BlockPool::allocate(int64_t n) {
  if (n > num_free_) return std::nullopt;
  std::vector<int32_t> out;
  if (n <= 0) return out;
  out.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int32_t id = free_head_;
    unlink_free(id);
    Block& b = at(id);
    if (b.hash) {  // evict: its old contents are about to be overwritten
      cached_.erase(*b.hash);
      b.hash.reset();
      ++num_evicted_;
    }
    b.ref_count = 1;
    out.push_back(id);
  }
  std::sort(out.begin(), out.end());
  return out;
}

void BlockPool::free(std::span<const int32_t> ids) {
  for (int32_t id : ids) {
    if (id == kNullBlock) continue;
    Block& b = at(id);
    assert(b.ref_count > 0 && "freeing a block that holds no reference");
    if (--b.ref_count == 0) push_free_back(id);
  }
}

void BlockPool::touch(std::span<const int32_t> ids) {
  for (int32_t id : ids) {
    if (id == kNullBlock) continue;
    Block& b = at(id);
    if (b.ref_count == 0) unlink_free(id);
    ++b.ref_count;
  }
}

std::optional<int32_t> BlockPool::lookup(BlockHash key) const {
  if (!prefix_caching_) return std::nullopt;
  auto it = cached_.find(key);
  if (it == cached_.end()) return std::nullopt;
  return it->second;
}

void BlockPool::cache_block(int32_t id, BlockHash key) {
  if (!prefix_caching_ || id == kNullBlock) return;
  Block& b = at(id);
  if (b.hash) return;
  if (cached_.emplace(key, id).second) b.hash = key;
}

std::vector<int32_t> BlockPool::free_list() const {
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(num_free_));
  for (int32_t id = free_head_; id >= 0; id = at(id).next) out.push_back(id);
  return out;
}

bool BlockPool::check_invariants() const {
  const Block& null_block = at(kNullBlock);
  if (null_block.ref_count != 1 || null_block.in_free_list || null_block.hash) return false;
  int64_t flagged_free = 0;
  for (int32_t id = 1; id <= num_total_blocks(); ++id) {
    const Block& b = at(id);
    if (b.ref_count < 0 || (b.ref_count == 0) != b.in_free_list) return false;
    flagged_free += b.in_free_list ? 1 : 0;
    if (b.hash) {
      auto it = cached_.find(*b.hash);
      if (it == cached_.end() || it->second != id) return false;
    }
  }
  // Walk the list both ways: every link is mirrored and every member is flagged free.
  int64_t walked = 0;
  int32_t last = -1;
  for (int32_t id = free_head_; id >= 0; last = id, id = at(id).next) {
    if (id == kNullBlock || id > num_total_blocks() || !at(id).in_free_list || at(id).prev != last)
      return false;
    if (++walked > flagged_free) return false;  // a cycle
  }
  if (last != free_tail_) return false;
  for (const auto& [key, id] : cached_) {
    if (id <= kNullBlock || id > num_total_blocks() || at(id).hash != key) return false;
  }
  return flagged_free == num_free_ && walked == num_free_ &&
         num_free_blocks() + num_used_blocks() == num_total_blocks();
}

}  // namespace longctx
