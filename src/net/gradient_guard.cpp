#include "net/gradient_guard.h"

#include <cmath>
#include <cstdio>

namespace moe::net {

std::string GradientGuard::check(const std::string& uid, const std::string& client, double r) {
  std::lock_guard<std::mutex> lk(mu_);
  auto [it, fresh] = experts_.try_emplace(uid, ScaleWindow(size_t(c_.window)));
  ScaleWindow& w = it->second;
  const bool warm = int(w.size()) >= c_.warmup;
  const double bound = warm ? c_.factor * w.median() : c_.max_rms;
  if (!std::isfinite(r) || r > bound) {
    reject_locked(client);
    char b[160];
    std::snprintf(b, sizeof b, "gradient rejected: RMS %.3g exceeds the bound %.3g (%s)", r, bound,
                  warm ? "recent gradients' median times the factor" : "absolute cap");
    return b;
  }
  w.add(r);
  ++st_.accepted;
  clients_.erase(client);  // not refused (refused clients do not get here): its count starts over
  return "";
}

void GradientGuard::reject(const std::string& client) {
  std::lock_guard<std::mutex> lk(mu_);
  reject_locked(client);
}

void GradientGuard::reject_locked(const std::string& client) {
  ++st_.rejected;
  // Bounded: a liar that changes identity for every call must not grow the server's memory.
  if (st_.rejected_by_client.size() < 4096 || st_.rejected_by_client.count(client)) ++st_.rejected_by_client[client];
  if (clients_.size() >= 65536 && !clients_.count(client)) return;
  Client& c = clients_[client];
  if (++c.in_a_row >= c_.refuse_after) {
    c.in_a_row = 0;
    c.until = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(c_.refuse_s));
  }
}

std::string GradientGuard::refused(const std::string& client) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = clients_.find(client);
  if (it == clients_.end() || Clock::now() >= it->second.until) return "";
  ++st_.refused_calls;
  const double left = std::chrono::duration<double>(it->second.until - Clock::now()).count();
  char b[120];
  std::snprintf(b, sizeof b, "refused for %.0f more seconds after repeated rejected gradients", left);
  return b;
}

GradientGuardStats GradientGuard::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return st_;
}

}  // namespace moe::net
