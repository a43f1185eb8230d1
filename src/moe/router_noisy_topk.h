#pragma once
// Noisy top-k gating (Shazeer et al. 2017): H = x W_g^T + eps * softplus(x W_noise^T), eps ~ N(0, 1)
// in training only; the k largest H are kept and their weights are the softmax over those k values.
// Balancing losses: importance = w_imp * CV^2(sum over tokens of each expert's weight) and
// load = w_load * CV^2(sum over tokens of P(x, i)), P the smooth probability that expert i stays in
// the top k under a new draw of its noise: Phi((clean_i - kth_excluding_i) / std_i).
// CV^2 = population variance / mean^2 over the experts.
#include <string>

#include "core/rng.h"
#include "core/tensor.h"
#include "moe/router.h"

namespace moe {

struct NoisyTopKRouterConfig {
  int d_model = 0;
  int n_expert = 0;
  int k = 2;
  float importance_coef = 0.01f;
  float load_coef = 0.01f;
  uint64_t seed = 0;  // noise stream: a new draw after every training step (after_step)
};

class NoisyTopKRouter final : public Router {
 public:
  // name: "...gate.weight"; the noise projection is "...gate_noise.weight".
  NoisyTopKRouter(const std::string& name, const NoisyTopKRouterConfig& cfg);
  Param gate;   // [E, d]
  Param noise;  // [E, d]

  void forward(RoutingPlan& plan, const float* x, int64_t n) override;
  void backward(float* dx, const float* dweight) override;
  void params(ParamList& out) override { out.insert(out.end(), {&gate, &noise}); }
  double aux_objective() const override;
  void after_step() override { ++noise_step_; }
  void restore_steps(int64_t steps) override { noise_step_ = uint64_t(steps); }

  double importance_loss() const { return importance_loss_; }
  double load_loss() const { return load_loss_; }

 private:
  NoisyTopKRouterConfig c_;
  const float* x_ = nullptr;
  int64_t n_ = 0;
  const RoutingPlan* plan_ = nullptr;
  uint64_t noise_step_ = 0;
  bool noisy_ = false;  // noise was applied in the last forward (training)
  Tensor clean_, raw_, stdv_, eps_, h_;  // [n, E]
  std::vector<int32_t> order_;           // [n, k+1] top-(k+1) indices of H
  std::vector<float> topv_;              // [n, k+1]
  std::vector<double> importance_, load_;  // [E]
  double importance_loss_ = 0, load_loss_ = 0;
  Tensor dclean_, draw_;                 // [n, E]
};

}  // namespace moe
