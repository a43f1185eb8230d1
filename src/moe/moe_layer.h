#pragma once
// The sparse MoE layer: route -> permute -> expert bank -> unpermute/combine, forward and backward.
#include <memory>

#include "moe/dispatch.h"
#include "moe/expert_bank.h"
#include "moe/router.h"

namespace moe {

class MoELayer {
 public:
  MoELayer(std::unique_ptr<Router> router, std::unique_ptr<ExpertBank> bank, int d_model);

  // x, y: [n, d]; x must stay alive until backward.
  void forward(float* y, const float* x, int64_t n);
  // dx: [n, d] assigned (expert path + router path). At most once per forward.
  void backward(float* dx, const float* dy);
  void params(ParamList& out);

  const RoutingPlan& plan() const { return plan_; }
  Router& router() { return *router_; }
  ExpertBank& bank() { return *bank_; }

 private:
  std::unique_ptr<Router> router_;
  std::unique_ptr<ExpertBank> bank_;
  int d_;
  int64_t n_ = 0;
  RoutingPlan plan_;
  Dispatch dispatch_;
  Tensor xs_, ys_;      // [M, d] grouped rows; backward turns them into dxs, dys in place
  std::vector<float> dweight_;  // [n, k]
  // Experts that failed to answer (remote banks): each token's weights are renormalised over the
  // experts that answered, w'_j = w_j S_all / S_ok; the originals are kept for the backward.
  void renormalise_over_answered(const std::vector<uint8_t>& failed);
  void set_row_blocks();
  void renormalise_backward(float* dweight) const;
  bool renormalised_ = false;
  std::vector<float> w_orig_;  // [n, k]
};

}  // namespace moe
