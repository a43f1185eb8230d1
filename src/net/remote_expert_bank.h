#pragma once
// The experts of one MoE layer living on expert servers, behind the ExpertBank interface. Forward
// sends one call per (expert, batch), all at once, each with a deadline; it waits until every token
// has k_min answered experts (or none of its experts can still answer), then a short grace period
// for the rest. A call that fails is retried on another replica of the expert; one still pending
// after hedge_after_s is also sent to a replica (first answer wins). Experts without an answer are
// reported by failed_experts(): the MoE layer renormalises each token's weights over the experts
// that answered, and a token with none rides the residual connection. Backward sends each answered
// expert its rows and their output gradient, to the server that answered the forward; the server
// steps that expert's optimizer. Failing servers are banned with exponential backoff.
#include <chrono>
#include <memory>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "moe/expert_bank.h"
#include "moe/expert_call_stats.h"
#include "moe/expert_grid.h"
#include "net/expert_client.h"
#include "net/replica_check.h"
#include "net/scale_window.h"

namespace moe::net {

// Where an expert can be called: its servers' addresses, best first (the DHT directory, or a fixed
// list in tests). A server that fails keeps its records until they expire; the ban list stops the
// calls meanwhile.
class ExpertLocator {
 public:
  virtual ~ExpertLocator() = default;
  virtual std::vector<std::string> addresses(const std::string& uid) = 0;
  // The same for a layer's experts at once (a directory fetches its cache misses in one round).
  virtual std::vector<std::vector<std::string>> addresses(const std::vector<std::string>& uids) {
    std::vector<std::vector<std::string>> out;
    for (const std::string& u : uids) out.push_back(addresses(u));
    return out;
  }
  // The live experts "prefix.i" and their servers' addresses, from one lookup of the prefix's
  // records instead of one per expert; nullopt: the locator cannot tell (the bank asks per uid).
  virtual std::optional<std::map<int, std::vector<std::string>>> live_children(const std::string& prefix) {
    return std::nullopt;
  }
  // The next live_children(prefix) asks the network again: its answer missed experts the caller
  // expected. False when it will not (asked again too recently, or nothing to refresh).
  virtual bool refresh(const std::string& prefix) { return false; }
};

struct RemoteCallConfig {
  double forward_timeout_s = 5;
  double backward_timeout_s = 10;
  int k_min = 1;              // answered experts a token waits for (capped at its k)
  double grace_s = 0.05;      // extra wait for the remaining experts once every token has k_min
  double hedge_after_s = 1;   // a call pending this long is also sent to a replica
  int retries = 1;            // a call that fails (not a timeout) is sent again to the same server
                              // this many times, deadline permitting; Backward retries are
                              // idempotent (the server remembers request ids)
  // A server is banned after ban_after failed calls in a row (a dead or hung server fails them all
  // within a step; one failing 10% of its calls at random does so once in 10^5 calls), for
  // ban_base_s * 2^(bans - 1), at most ban_max_s; a success clears its record. A window rule
  // ("4 of the last 8") banned such a flaky server every few hundred calls and cost it half its
  // training time: measured in docs/decentralized.md.
  int ban_after = 5;
  double ban_base_s = 1;
  double ban_max_s = 60;
  // Output validation: an answer whose RMS is more than output_factor times the layer's typical
  // expert (the median of its experts' recent accepted answers' medians, once 3 experts have
  // output_warmup of them; before that, the median of the round's answers) is a failed call,
  // charged to its server: robust while fewer than half of the experts lie. NaN/Inf replies
  // always fail.
  bool validate_outputs = true;
  // Answers of fewer rows are not judged by size: one token's output is far noisier than a
  // batch's, and generation (a token per call) saw honest answers judged lies. Canaries still run.
  int output_min_rows = 8;
  bool canary_rows = true;  // each forward call carries a copy of its first row (ExpertClient)
  // 10 caught the x100 attack of docs/security.md but judged honest answers of the grid-gated tiny
  // model of tests/cli/decentralized_grid.sh lies (its experts differ by more than 10x): 100.
  double output_factor = 100;
  int output_warmup = 3;
  // Replica comparison (replica_check.h), for evaluation and serving only (training changes the
  // experts, so replicas drift apart): this fraction of the answered forward calls whose expert
  // has another unbanned replica is sent to it too; a server outvoted by two others is banned as a
  // liar, and its answer replaced by theirs.
  double compare_fraction = 0;
  double compare_tolerance = 1e-3;
  // Testing aid for the attack experiments: a poisoning client's gradients to the experts,
  // "scale" (x1e6) or "nan"; "" is honest.
  std::string poison_gradients;
};

// Servers that failed recently, shared by every layer of a client.
class BanList {
 public:
  explicit BanList(const RemoteCallConfig& c) : c_(c) {}
  bool banned(const std::string& address);
  void failure(const std::string& address);
  // An answer that failed validation (a lie, not bad luck): the server is banned at once, for
  // ban_base_s * 2^(lies - 1) (at most ban_max_s), and its lies are never forgiven by successes:
  // a server lying in some of its answers would otherwise never fail 5 in a row (the x100 attack
  // run of docs/security.md).
  void lie(const std::string& address);
  void success(const std::string& address);
  int banned_now();  // servers banned at this moment

 private:
  struct Entry {
    int in_a_row = 0;  // failed calls since the last success
    int bans = 0;
    int lies = 0;      // never reset
    std::chrono::steady_clock::time_point until{};
  };
  // ban_base_s * 2^(n - 1), at most ban_max_s: the n-th ban (or lie) of a server.
  std::chrono::steady_clock::duration ban_length(int n) const;

  RemoteCallConfig c_;
  std::mutex mu_;
  std::map<std::string, Entry> entries_;
};

// What every remote layer of one client shares: the channels, the locator, the ban list, the call
// statistics.
struct RemoteContext {
  RemoteCallConfig cfg;
  ExpertClient client;
  std::shared_ptr<ExpertLocator> locator;
  BanList bans{cfg};
  ExpertCallStats stats;
  EvidenceLog evidence;  // replica comparisons that found a lie or could not decide

  RemoteContext(const RemoteCallConfig& c, std::shared_ptr<ExpertLocator> l)
      : cfg(c), locator(std::move(l)), bans(c) {
    client.set_canary_rows(c.canary_rows);
  }
};

class RemoteExpertBank final : public ExpertBank, private GridLiveness {
 public:
  // Expert e of this layer is the uid prefix + "." + e (prefix: "ffn.<layer>"); with a grid
  // (dimensions whose product is n_experts), prefix + "." + its coordinates ("ffn.<layer>.i.j"),
  // and the grid router finds live experts by asking for the live children of a few prefixes.
  RemoteExpertBank(std::shared_ptr<RemoteContext> ctx, std::string prefix, int n_experts, int d_model,
                   std::vector<int> grid = {});

  int n_experts() const override { return E_; }
  void observe_plan(const RoutingPlan& plan) override { plan_ = &plan; }
  void forward(float* ys, const float* xs, const std::vector<int64_t>& offsets) override;
  void backward(float* dxs, const float* dys) override;
  void params(ParamList&) override {}  // the experts' weights live on their servers
  const std::vector<uint8_t>* failed_experts() const override { return &failed_; }
  // Experts with a live, unbanned server (the directory's cached view; nullptr when all are).
  const std::vector<uint8_t>* available_experts() override;
  GridLiveness* grid_liveness() override { return grid_.dims.empty() ? nullptr : this; }
  void set_learning_rate(float lr) override { lr_ = lr; }

  std::string uid(int e) const;

 private:
  // Live children of a grid prefix from its prefix records; an expert's servers, when all are
  // banned, do not make it live. Remembers the experts' servers for the coming forward.
  std::vector<int> live_children(const std::vector<int>& prefix) override;
  // Replica comparison of some of this forward's answers (RemoteCallConfig::compare_fraction);
  // ex: the round's experts, ys: the layer's output rows, corrected in place.
  template <class Experts>
  void compare_replicas(Experts& ex, float* ys);

  GridShape grid_;
  std::shared_ptr<RemoteContext> ctx_;
  std::string prefix_;
  int E_, d_;
  float lr_ = 0;
  const RoutingPlan* plan_ = nullptr;
  const float* xs_ = nullptr;
  std::vector<int64_t> offsets_;
  std::vector<uint8_t> failed_;          // [E]
  std::vector<uint8_t> available_;       // [E]
  std::vector<std::vector<std::string>> servers_;  // [E]: from the prefix lookup of this forward
  bool have_servers_ = false;
  std::vector<uint8_t> seen_;            // [E]: grid: servers_[e] came from a children lookup
  std::vector<std::string> answered_by_; // [E]: the server whose forward was used
  std::vector<ScaleWindow> output_rms_;  // [E]: RMS of each expert's recently accepted answers
  std::vector<float> poisoned_;          // poison_gradients: the gradients actually sent
};

}  // namespace moe::net
