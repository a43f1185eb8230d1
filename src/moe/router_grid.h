#pragma once
// The grid gate of Learning@home (hivemind's RemoteMixtureOfExperts), product-key style: the experts
// sit on a D-dimensional grid (see expert_grid.h); the gate scores each dimension's coordinates
// separately, s_d = x W_d^T, and an expert's score is the sum of its coordinates' scores. A beam
// search keeps the beam_size best live prefixes per dimension and returns the k best live experts:
// the exact top-k when nothing is dead and beam_size >= k, found while asking about at most
// 1 + beam_size prefixes per token instead of scoring all prod(G_d) experts. Weights are the
// softmax over the chosen experts' scores.
// Balancing (optional, aux_coef): per dimension, the Switch loss G_d * sum_i f_{d,i} P_{d,i} with
// f the share of chosen slots whose coordinate d is i and P the mean of softmax(s_d), averaged over
// the dimensions (1 at perfect balance). The reported entropy is that of softmax over all experts
// of the summed scores, which factorises: sum_d H(softmax(s_d)).
// Parameters: one gate [sum_d G_d, d_model], the dimensions' rows one after another.
#include <string>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"
#include "moe/expert_grid.h"
#include "moe/router.h"

namespace moe {

struct GridRouterConfig {
  int d_model = 0;
  GridShape grid;      // prod(dims) experts
  int k = 2;
  int beam_size = 0;   // 0: k
  float aux_coef = 0.0f;
};

class GridRouter final : public Router {
 public:
  GridRouter(const std::string& name, const GridRouterConfig& cfg);  // name: "...gate.weight"
  Param gate;  // [sum_d G_d, d]

  void forward(RoutingPlan& plan, const float* x, int64_t n) override;
  void backward(float* dx, const float* dweight) override;
  void params(ParamList& out) override { out.push_back(&gate); }
  double aux_objective() const override;
  // The live cells the beam search may choose (remote experts); nullptr: all, or those of
  // set_available when that is set.
  void set_liveness(GridLiveness* live) override { live_ = live; }

  // Prefixes whose live children the last forward asked for (each asked once per forward).
  int64_t prefixes_asked() const { return asked_; }

 private:
  // Live children of the prefix with row-major partial index p at depth d (memoised per forward).
  const std::vector<int>& children(int d, int64_t p);

  GridRouterConfig c_;
  int D_ = 0, S_ = 0, E_ = 0, B_ = 0;
  std::vector<int> off_;  // [D]: first row of dimension d in the gate
  GridLiveness* live_ = nullptr;
  std::vector<std::unordered_map<int64_t, std::vector<int>>> kids_;  // [D]: partial index -> children
  int64_t asked_ = 0;
  const float* x_ = nullptr;
  int64_t n_ = 0;
  const RoutingPlan* plan_ = nullptr;
  Tensor scores_;  // [n, S]
  Tensor probs_;   // [n, S]: softmax of each dimension's scores
  Tensor dl_;      // [n, S]
  std::vector<double> f_;  // [S]: share of chosen slots per coordinate (global batch)
  int64_t n_global_ = 0;
};

}  // namespace moe
