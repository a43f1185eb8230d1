#pragma once
// Top-k softmax router (GLaM, Mixtral; Switch when k = 1): p = softmax(x W_g^T), the k largest p,
// weights renormalised to sum 1 when norm_topk_prob (k >= 2 default), raw p otherwise (k = 1:
// renormalising would make the weight 1 and cut the router off from the task gradient).
// Losses: Switch load balancing E * sum_i f_i P_i with f_i counting all k choices divided by k (1 at
// perfect balance), the ST-MoE z-loss mean_t logsumexp(logits_t)^2, and the DeepSeek-V3
// sequence-wise loss: the same E * sum_i f_i P_i computed within each sequence, averaged.
// Capacity (Switch): with a capacity factor cf > 0 each expert takes at most
// C = ceil(cf * n * k / E) slots, assigned in token order with all first choices before any second
// choice; a slot past C is dropped (its token rides the residual). cf = 0 is dropless.
#include <string>

#include "core/tensor.h"
#include "moe/router.h"

namespace moe {

struct TopKRouterConfig {
  int d_model = 0;
  int n_expert = 0;
  int k = 2;
  bool norm_topk_prob = true;
  float aux_coef = 0.0f;  // applied to the balancing loss (the model divides by the layer count)
  float z_coef = 0.0f;
  float seq_aux_coef = 0.0f;
  float capacity_factor = 0.0f;       // training; 0: dropless
  float eval_capacity_factor = 0.0f;  // evaluation and generation; 0: dropless
};

class TopKRouter final : public Router {
 public:
  TopKRouter(const std::string& name, const TopKRouterConfig& cfg);  // name: "...gate.weight"
  Param gate;  // [E, d]

  void forward(RoutingPlan& plan, const float* x, int64_t n) override;
  void backward(float* dx, const float* dweight) override;
  void params(ParamList& out) override { out.push_back(&gate); }
  double aux_objective() const override;

  const Tensor& probs() const { return probs_; }

 private:
  TopKRouterConfig c_;
  const float* x_ = nullptr;
  int64_t n_ = 0;
  const RoutingPlan* plan_ = nullptr;
  Tensor logits_;  // [n, E]
  Tensor probs_;   // [n, E]
  Tensor lse_;     // [n]
  Tensor dlogits_;  // [n, E]
  std::vector<float> val_;  // [n, k] top-k probabilities
  std::vector<int32_t> sel_;  // [n, k] selected experts before capacity drops
  std::vector<double> frac_;  // [E] f_i
  std::vector<double> seq_frac_;  // [S, E] f_i per sequence
  int64_t n_global_ = 0, seq_global_ = 0;  // tokens and sequences of the batch over all ranks
};

}  // namespace moe
