#pragma once
// The expert server's defence against poisoned gradients: a client's grad_output is applied only if
// finite and its RMS is within `factor` times the median RMS of the expert's recently accepted
// gradients (once `warmup` were accepted; before that, within the absolute cap `max_rms`). Each
// rejection counts against the client; a client with `refuse_after` rejections in a row is refused
// every call for `refuse_s` seconds. Clients are told apart by their TLS client key when they
// present one (a reconnect is the same client), else by their connection.
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "net/scale_window.h"

namespace moe::net {

struct GradientGuardConfig {
  // accepted: rms <= factor * median of the expert's recent gradients. An expert's gradient rows
  // carry the gate weights of its tokens, which differ by orders of magnitude: 10 got an honest
  // client refused in the first attack run, 100 rejected honest gradients of the grid-gated tiny
  // model of tests/cli/decentralized_grid.sh under load. Poison of x1e6 is caught by any factor
  // far below that.
  double factor = 1e4;
  int warmup = 8;          // accepted gradients before the median is trusted
  double max_rms = 10;     // absolute cap: an LM's dL/dy is ~1e-3 per element, x1e6 poison far above
  int window = 64;
  int refuse_after = 5;    // rejections in a row
  double refuse_s = 60;
};

struct GradientGuardStats {
  int64_t accepted = 0, rejected = 0, refused_calls = 0;
  std::map<std::string, int64_t> rejected_by_client;
};

class GradientGuard {
 public:
  explicit GradientGuard(const GradientGuardConfig& c = {}) : c_(c) {}
  // "" when the client's gradient of this RMS (NaN: not finite) may step the expert, else why not.
  // An accepted gradient joins the expert's window.
  std::string check(const std::string& uid, const std::string& client, double rms);
  // Counts a rejection that another check made (e.g. a non-finite grad_output) against the client.
  void reject(const std::string& client);
  // "" unless the client is refused now; then the message to answer with.
  std::string refused(const std::string& client);
  GradientGuardStats stats() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Client {
    int in_a_row = 0;
    Clock::time_point until{};
  };
  void reject_locked(const std::string& client);

  GradientGuardConfig c_;
  mutable std::mutex mu_;
  std::map<std::string, ScaleWindow> experts_;
  std::map<std::string, Client> clients_;
  GradientGuardStats st_;
};

}  // namespace moe::net
