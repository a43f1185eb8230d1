#pragma once
// Statistics of calls to experts that can fail (remote experts), summed over a client's layers and
// read and reset once per training step.
#include <algorithm>
#include <cstdint>
#include <mutex>
#include <vector>

namespace moe {

struct ExpertCallSummary {
  int64_t calls = 0, failures = 0, timeouts = 0;
  int64_t below_k_min = 0;         // tokens left with fewer than k_min answered experts
  int64_t no_expert = 0;           // tokens none of whose experts answered (residual only)
  int64_t unavailable = 0;         // (layer, expert) pairs the gate routed around: no live server
  int64_t invalid = 0;             // answers rejected by output validation (counted in failures too)
  int64_t replica_checks = 0;      // answers compared with another replica's
  int64_t replica_lies = 0;        // servers outvoted by two replicas (banned)
  int64_t replica_undecided = 0;   // disagreements without a majority
  double latency_p50_ms = 0, latency_p99_ms = 0;
};

class ExpertCallStats {
 public:
  void call(bool ok, bool timeout, double latency_ms) {
    std::lock_guard<std::mutex> lk(mu_);
    ++s_.calls;
    if (!ok) ++s_.failures;
    if (timeout) ++s_.timeouts;
    if (ok) lat_.push_back(latency_ms);
  }
  // An answer that failed validation; was_counted_ok: it was first counted a successful call.
  void invalid(bool was_counted_ok = false) {
    std::lock_guard<std::mutex> lk(mu_);
    ++s_.invalid;
    if (was_counted_ok) ++s_.failures;
  }
  void unavailable(int64_t experts) {
    std::lock_guard<std::mutex> lk(mu_);
    s_.unavailable += experts;
  }
  void replicas(int64_t checks, int64_t lies, int64_t undecided) {
    std::lock_guard<std::mutex> lk(mu_);
    s_.replica_checks += checks;
    s_.replica_lies += lies;
    s_.replica_undecided += undecided;
  }
  void tokens(int64_t below_k_min, int64_t no_expert) {
    std::lock_guard<std::mutex> lk(mu_);
    s_.below_k_min += below_k_min;
    s_.no_expert += no_expert;
  }
  // The counts since the last take (latency quantiles of the successful calls), and a reset.
  ExpertCallSummary take() {
    std::lock_guard<std::mutex> lk(mu_);
    ExpertCallSummary r = s_;
    if (!lat_.empty()) {
      std::sort(lat_.begin(), lat_.end());
      auto q = [&](double p) { return lat_[std::min(lat_.size() - 1, size_t(p * double(lat_.size())))]; };
      r.latency_p50_ms = q(0.5);
      r.latency_p99_ms = q(0.99);
    }
    s_ = {};
    lat_.clear();
    return r;
  }

 private:
  std::mutex mu_;
  ExpertCallSummary s_;
  std::vector<double> lat_;
};

}  // namespace moe
