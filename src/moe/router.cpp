#include "moe/router.h"

#include "kernels/gemm.h"

namespace moe {

void Router::prepare_plan(RoutingPlan& plan, int64_t n, int k, int E) {
  plan.n_tok = n;
  plan.k = k;
  plan.n_expert = E;
  plan.expert.resize(n * k);
  plan.weight.resize(n * k);
}

void Router::gate_backward(float* dx, Param& gate, const float* dl, const float* x, int64_t n) {
  const int64_t E = gate.w.dim(0), d = gate.w.dim(1);
  kernels::linear_backward_input(dx, dl, gate.w.data(), n, d, E, /*accumulate=*/true);
  kernels::linear_backward_weight(gate.g.data(), dl, x, n, d, E);
}

}  // namespace moe
