#pragma once
// DeepSeek's gate (DeepSeek-V2/V3 MoEGate), as its checkpoints configure it:
//   scores s = softmax(x W_g^T) ("scoring_func": "softmax") or sigmoid(x W_g^T) ("sigmoid");
//   choice c = s, or s + b with the per-expert bias b ("noaux_tc": "<gate>.e_score_correction_bias");
//   "greedy": the top-k of c;
//   "group_limited_greedy" / "noaux_tc": the E experts form n_group equal groups scored by their
//     best c (V2) or the sum of their two best c (V3); only the topk_group best groups are
//     eligible (the others' c set to 0), then the top-k of c;
//   weights: the chosen s (never b); with k > 1 and norm_topk_prob renormalised, w /= sum + 1e-20;
//     routed_scaling_factor multiplies them always (V3) or only when not renormalised (V2).
// Training: gradients reach the gate through the chosen scores; the Switch balancing loss
// E * sum_i f_i P_i (P over the normalised scores s / sum(s)) with its coefficient; with noaux_tc
// the bias moves after each step by bias_update_speed * sign(mean load - load_i), as in V3.
#include <string>

#include "core/tensor.h"
#include "moe/router.h"

namespace moe {

struct DeepSeekRouterConfig {
  int d_model = 0;
  int n_expert = 0;
  int k = 2;
  bool sigmoid = false;           // scoring_func
  enum class Method { greedy, group_limited_greedy, noaux_tc } method = Method::greedy;
  int n_group = 1;
  int topk_group = 1;
  bool norm_topk_prob = false;
  float routed_scaling_factor = 1.0f;
  bool scale_normalized = true;   // V3: scale after renormalising too; V2: only unnormalised weights
  float aux_coef = 0.0f;
  float bias_update_speed = 1e-3f;
};

class DeepSeekRouter final : public Router {
 public:
  // name: "...gate.weight"; with noaux_tc the bias is "...gate.e_score_correction_bias".
  DeepSeekRouter(const std::string& name, const DeepSeekRouterConfig& cfg);
  Param gate;                  // [E, d]
  std::unique_ptr<Param> bias;  // [E], noaux_tc only; not trained by the optimizer

  void forward(RoutingPlan& plan, const float* x, int64_t n) override;
  void backward(float* dx, const float* dweight) override;
  void params(ParamList& out) override;
  double aux_objective() const override;
  void after_step() override;

 private:
  DeepSeekRouterConfig c_;
  const float* x_ = nullptr;
  int64_t n_ = 0, n_global_ = 0;
  const RoutingPlan* plan_ = nullptr;
  Tensor logits_, scores_, choice_, dlogits_;  // [n, E]
  std::vector<float> val_;                     // [n, k] top-k choice values (unused after selection)
  std::vector<double> frac_;                   // [E] f_i of the batch
  std::vector<int64_t> load_;                  // [E] of the last training forward
};

}  // namespace moe
