#pragma once
// A PEER layer: the product-key router and the single-neuron expert bank, forward and backward, plus
// the usage statistics of He (2024): fraction of experts retrieved, KL divergence of the retrieval
// counts from uniform, and how often heads retrieve the same expert for a token.
#include <memory>

#include "moe/expert_bank_peer.h"
#include "moe/router_peer.h"
#include "nn/ffn.h"

namespace moe {

struct PEERUsage {
  std::vector<int64_t> count;   // [N] retrievals per expert
  int64_t tokens = 0;
  int64_t retrievals = 0;       // tokens * h * k
  int64_t duplicate_slots = 0;  // retrievals of an expert already retrieved for the same token
  int64_t head_pairs = 0;       // (token, head pair) seen
  int64_t overlapping_pairs = 0;  // of which the two heads share at least one expert

  double fraction_used() const;      // experts retrieved at least once / N
  double kl_from_uniform() const;    // KL(p || uniform), p = count / retrievals (nats)
  double head_overlap() const;       // overlapping_pairs / head_pairs
  double duplicate_fraction() const;  // duplicate_slots / retrievals
  void merge(const PEERUsage& o);     // adds o's counts
};

class PEERLayer final : public FFN {
 public:
  PEERLayer(const std::string& prefix, const PEERConfig& cfg);
  PEERRouter router;
  PEERExpertBank bank;

  // x, y: [n, d]; x must stay alive until backward.
  void forward(float* y, const float* x, int64_t n);
  void forward(float* y, const float* x, int64_t n, int64_t) override { forward(y, x, n); }
  // dx: [n, d] assigned (experts + router).
  void backward(float* dx, const float* dy) override;
  void params(ParamList& out) override;
  void set_training(bool training) override { router.set_training(training); }
  PEERLayer* peer() override { return this; }
  const RoutingPlan& plan() const { return plan_; }
  const PEERConfig& config() const { return router.config(); }

  // When set, each forward adds its retrievals to *usage (sized to N on first use).
  void set_usage(PEERUsage* usage) { usage_ = usage; }

 private:
  void record_usage();
  RoutingPlan plan_;
  Tensor dweight_;  // [n, h*k]
  PEERUsage* usage_ = nullptr;
};

}  // namespace moe
