#include "serve/prefix_cache.h"

#include <algorithm>

#include "core/error.h"

namespace moe::serve {

namespace {

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

}  // namespace

void PrefixCache::drop(size_t i) {
  bytes_ -= entries_[i].bytes;
  entries_.erase(entries_.begin() + std::ptrdiff_t(i));
}

void PrefixCache::store(std::vector<int32_t> ids, std::vector<LayerKVCache> caches) {
  if (cfg_.max_bytes <= 0 || int64_t(ids.size()) < cfg_.min_tokens) return;
  const int64_t n = int64_t(ids.size());
  // A request's room for max_tokens it did not use is cut off (a copy) when it is over a quarter
  // of what it holds; a smaller slack is kept, and counted, rather than copied on the engine's thread.
  const bool cut = !caches.empty() && caches[0].capacity() > n + n / 4;
  int64_t bytes = int64_t(ids.size() * sizeof(int32_t));
  for (const LayerKVCache& c : caches) {
    MOE_ASSERT(c.len >= n && c.capacity() == caches[0].capacity());
    bytes += cut ? c.bytes() / c.capacity() * n : c.bytes();
  }
  if (bytes > cfg_.max_bytes) return;
  for (LayerKVCache& c : caches) {
    c.len = n;
    if (cut) set_capacity(c, n);
  }
  for (size_t i = entries_.size(); i-- > 0;)
    if (common_prefix(entries_[i].ids, ids) == entries_[i].ids.size()) drop(i);
  while (!entries_.empty() &&
         (bytes_ + bytes > cfg_.max_bytes || (cfg_.max_entries > 0 && int64_t(entries_.size()) >= cfg_.max_entries))) {
    size_t oldest = 0;
    for (size_t i = 1; i < entries_.size(); ++i)
      if (entries_[i].used < entries_[oldest].used) oldest = i;
    drop(oldest);
  }
  entries_.push_back({std::move(ids), std::move(caches), bytes, ++clock_});
  bytes_ += bytes;
}

int64_t PrefixCache::restore(const std::vector<int32_t>& prompt, std::vector<LayerKVCache>& caches) {
  if (prompt.size() < 2) return 0;
  size_t best = 0, best_len = 0;
  for (size_t i = 0; i < entries_.size(); ++i) {
    const size_t n = std::min(common_prefix(entries_[i].ids, prompt), prompt.size() - 1);
    if (n > best_len) best = i, best_len = n;
  }
  if (best_len == 0 || int64_t(best_len) < cfg_.min_tokens) return 0;
  Entry& e = entries_[best];
  MOE_ASSERT(e.caches.size() == caches.size());
  for (size_t l = 0; l < caches.size(); ++l) copy_positions(caches[l], e.caches[l], int64_t(best_len));
  e.used = ++clock_;
  return int64_t(best_len);
}

}  // namespace moe::serve
