#pragma once
// An expert server: hosts a set of SwiGLU experts (uids "PREFIX.l.i"), each with its own AdamW
// state, behind the moe.expert.v1 gRPC service. Concurrent requests to one expert are batched into
// one GEMM (the first waiting request computes for all queued ones). Backward recomputes the
// forward from the input it is sent, returns the input gradient and steps that expert's optimizer.
// Experts and optimizer state are saved atomically to DIR/experts.safetensors (save(), and by the
// caller every few minutes and on SIGTERM) and reloaded on start.
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "net/gradient_guard.h"
#include "net/identity.h"
#include "net/rate_limiter.h"
#include "train/adamw.h"

namespace moe::net {

struct ExpertServerConfig {
  std::vector<std::string> uids;   // experts to host
  int d_model = 0;
  int d_ff = 0;
  std::string listen = "127.0.0.1:0";  // host:port; port 0 picks a free one
  std::string advertise_host;          // the host clients reach (default: listen's; needed for 0.0.0.0)
  std::string checkpoint_dir;          // "": experts live in memory only
  std::string init_from;               // a model checkpoint directory: expert i of MoE layer l
                                       // starts from that model's weights (uid PREFIX.l.i)
  uint64_t seed = 0;                   // fresh experts: N(0, init_std^2), seeded per uid
  float init_std = 0.02f;
  float lr = 3e-3f;                    // the largest learning rate a client may ask for
  AdamWConfig adam;
  int64_t max_rows = 1 << 16;          // rows per request
  // Testing aids for fault-tolerance experiments: each call fails with probability fail_rate
  // (UNAVAILABLE), and every answer waits delay_ms first.
  double fail_rate = 0;
  double delay_ms = 0;
  // Testing aid for the attack experiments: a lying server's forward outputs: "scale" (x100),
  // "nan", "random" (standard normal noise), "flip" (negated: consistent, the size of an honest
  // answer); "" is honest.
  std::string attack;
  bool guard_gradients = true;          // the poisoned-gradient defence (gradient_guard.h)
  // Serve over TLS with this identity's certificate (clients pin it to the key of the server's
  // signed records, tls.h); nullptr: plaintext.
  std::shared_ptr<const NodeIdentity> tls;
  GradientGuardConfig guard;
  RateLimitConfig rate_limit;            // rows per second per client (0: none)
};

struct ExpertServerStats {
  int64_t forward_calls = 0, backward_calls = 0;
  int64_t forward_batches = 0, backward_batches = 0;  // GEMM batches (<= calls: batching)
  int64_t rejected = 0;                               // invalid requests
  int64_t injected_failures = 0;
  int64_t rows = 0;
  GradientGuardStats gradients;                       // accepted / rejected / refused, per client
  RateLimitStats rate_limit;                          // calls over a client's rate, per client
};

class ExpertServer {
 public:
  // Builds (or reloads) the experts and starts serving. moe::Error on a bad config, a port that
  // cannot be bound, or a checkpoint that does not match the experts.
  explicit ExpertServer(const ExpertServerConfig& cfg);
  ~ExpertServer();  // stops serving (does not save: call save() first)
  ExpertServer(const ExpertServer&) = delete;
  ExpertServer& operator=(const ExpertServer&) = delete;

  // "host:port" clients can reach (the bound port).
  std::string address() const;
  int port() const;
  const ExpertServerConfig& config() const { return cfg_; }
  // Rows queued or being computed: the load announced to clients.
  double load() const;
  // Atomically writes every expert and its optimizer state (no-op without checkpoint_dir).
  void save();
  // Stops accepting calls and waits for those in flight.
  void shutdown();
  ExpertServerStats stats() const;
  // Optimizer steps taken by an expert.
  int64_t steps(const std::string& uid) const;
  // Whether the experts came from checkpoint_dir (a restart) rather than a fresh initialisation.
  bool reloaded() const { return reloaded_; }

  struct Impl;

 private:
  ExpertServerConfig cfg_;
  std::unique_ptr<Impl> impl_;
  bool reloaded_ = false;
};

}  // namespace moe::net
