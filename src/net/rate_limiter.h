#pragma once
// Rate limits per client on an expert server: a token bucket of rows per client (its TLS client key
// when it presents one, else its connection), refilled at `rows_per_s` up to `burst_s` seconds'
// worth. A call whose rows exceed what the bucket holds is refused (RESOURCE_EXHAUSTED) and costs
// nothing; the client may retry later. One greedy client then cannot take an expert's whole
// capacity from the others.
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace moe::net {

struct RateLimitConfig {
  double rows_per_s = 0;  // 0: no limit
  double burst_s = 2;     // bucket size, in seconds of rows_per_s
  size_t max_clients = 100000;  // buckets kept; the longest-idle is forgotten beyond (it starts full)
};

struct RateLimitStats {
  int64_t admitted_calls = 0, limited_calls = 0;
  std::map<std::string, int64_t> limited_by_client;
};

class RateLimiter {
 public:
  explicit RateLimiter(const RateLimitConfig& c = {}) : c_(c) {}
  bool enabled() const { return c_.rows_per_s > 0; }
  // Takes `rows` from the client's bucket: true when they were there (or there is no limit).
  bool admit(const std::string& client, int64_t rows);
  RateLimitStats stats() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Bucket {
    double tokens = 0;
    Clock::time_point last{};
  };
  RateLimitConfig c_;
  mutable std::mutex mu_;
  std::map<std::string, Bucket> buckets_;
  RateLimitStats st_;
};

}  // namespace moe::net
