#pragma once
// Sigmoid gating with bias-based load balancing (DeepSeek-V3): s = sigmoid(x W_g^T); experts are
// selected by the top-k of s + b, where b is a per-expert bias that gets no gradient; the weights
// are the selected s (without b), renormalised when norm_topk_prob, times routed_scaling_factor.
// After each training step b_i += gamma * sign(mean load - load_i), which moves load toward balance
// without an auxiliary loss (the balancing loss is still reported and applied if its coefficient
// is non-zero, with P_i the mean normalised score). DeepSeek-V3's complementary sequence-wise loss
// is the same E * sum_i f_i P_i computed within each sequence (normalised scores s / sum(s)),
// averaged over sequences, with its own coefficient.
#include <string>

#include "core/tensor.h"
#include "moe/router.h"

namespace moe {

struct SigmoidBiasRouterConfig {
  int d_model = 0;
  int n_expert = 0;
  int k = 2;
  bool norm_topk_prob = true;
  float routed_scaling_factor = 1.0f;
  float bias_update_speed = 1e-3f;  // gamma
  float aux_coef = 0.0f;
  float seq_aux_coef = 0.0f;
};

class SigmoidBiasRouter final : public Router {
 public:
  // name: "...gate.weight"; the bias is "...gate.e_score_correction_bias" (DeepSeek-V3's name).
  SigmoidBiasRouter(const std::string& name, const SigmoidBiasRouterConfig& cfg);
  Param gate;  // [E, d]
  Param bias;  // [E], not trainable by the optimizer

  void forward(RoutingPlan& plan, const float* x, int64_t n) override;
  void backward(float* dx, const float* dweight) override;
  void params(ParamList& out) override { out.insert(out.end(), {&gate, &bias}); }
  double aux_objective() const override;
  void after_step() override;

 private:
  SigmoidBiasRouterConfig c_;
  const float* x_ = nullptr;
  int64_t n_ = 0;
  const RoutingPlan* plan_ = nullptr;
  Tensor logits_, scores_, biased_, dlogits_;  // [n, E]
  std::vector<float> val_;                    // [n, k] biased top-k values (unused after selection)
  std::vector<double> frac_;                  // [E]
  std::vector<double> seq_frac_;              // [S, E] f_i per sequence
  std::vector<int64_t> load_;                 // [E] of the last training forward (all ranks)
  int64_t n_global_ = 0, seq_global_ = 0;     // tokens and sequences of the batch over all ranks
};

}  // namespace moe
