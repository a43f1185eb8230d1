#pragma once
// Expert-choice routing (Zhou et al. 2022): s = softmax(x W_g^T) per token; each expert takes the
// C = ceil(n * c / E) tokens with the highest score for it (ties: lower token index), and a taken
// token's weight is that score. Load is perfectly balanced by construction, but a token's experts
// depend on the other tokens of the batch: it is not causal, so it trains and evaluates but cannot
// generate text (Router::causal() is false). The plan has one slot per expert (k = E), -1 where the
// expert did not take the token; a token no expert took is counted as dropped.
#include <string>

#include "core/tensor.h"
#include "moe/router.h"

namespace moe {

struct ExpertChoiceRouterConfig {
  int d_model = 0;
  int n_expert = 0;
  float capacity = 2.0f;  // c: average experts per token
  float z_coef = 0.0f;
};

class ExpertChoiceRouter final : public Router {
 public:
  ExpertChoiceRouter(const std::string& name, const ExpertChoiceRouterConfig& cfg);
  Param gate;  // [E, d]

  void forward(RoutingPlan& plan, const float* x, int64_t n) override;
  void backward(float* dx, const float* dweight) override;
  void params(ParamList& out) override { out.push_back(&gate); }
  double aux_objective() const override;
  bool causal() const override { return false; }

 private:
  ExpertChoiceRouterConfig c_;
  const float* x_ = nullptr;
  int64_t n_ = 0;
  int64_t n_global_ = 0;  // tokens of the batch over all ranks of the data group
  const RoutingPlan* plan_ = nullptr;
  Tensor logits_, probs_, lse_, dlogits_;  // [n, E], [n, E], [n], [n, E]
};

}  // namespace moe
