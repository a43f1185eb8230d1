#include "net/rate_limiter.h"

#include <algorithm>

namespace moe::net {

bool RateLimiter::admit(const std::string& client, int64_t rows) {
  if (!enabled()) return true;
  std::lock_guard<std::mutex> lk(mu_);
  const Clock::time_point now = Clock::now();
  const double cap = c_.rows_per_s * c_.burst_s;
  auto it = buckets_.find(client);
  if (it == buckets_.end()) {
    if (buckets_.size() >= c_.max_clients) {  // forget the longest-idle client (a linear scan: rare)
      auto idle = std::min_element(buckets_.begin(), buckets_.end(),
                                   [](const auto& a, const auto& b) { return a.second.last < b.second.last; });
      buckets_.erase(idle);
    }
    it = buckets_.emplace(client, Bucket{cap, now}).first;
  }
  Bucket& b = it->second;
  b.tokens = std::min(cap, b.tokens + c_.rows_per_s * std::chrono::duration<double>(now - b.last).count());
  b.last = now;
  if (double(rows) <= b.tokens) {
    b.tokens -= double(rows);
    ++st_.admitted_calls;
    return true;
  }
  ++st_.limited_calls;
  if (st_.limited_by_client.size() < 1000 || st_.limited_by_client.count(client)) ++st_.limited_by_client[client];
  return false;
}

RateLimitStats RateLimiter::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return st_;
}

}  // namespace moe::net
