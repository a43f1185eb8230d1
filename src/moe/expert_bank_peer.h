#pragma once
// PEER's expert bank: N single-neuron experts e_i(x) = act(u_i . x) v_i, held as two [N, d] tables.
// Unlike the grouped banks (expert_bank.h), it reads the routing plan in token order and combines
// as it goes, y_t = sum over the h*k slots of w_s act(u_e . x_t) v_e: permuting rows by expert would
// materialise [tokens, h*k, d] copies of the input for experts that are one dot product each.
// Per token it keeps only the h*k pre-activations; no [tokens, heads, k, d] tensor exists.
// Backward gives row-sparse table gradients (Param::row_sparse): the retrieved rows only, summed per
// row in token order by one thread (deterministic, no atomics).
#include <string>
#include <vector>

#include "core/tensor.h"
#include "moe/peer_config.h"
#include "moe/routing_plan.h"
#include "nn/param.h"

namespace moe {

class PEERExpertBank {
 public:
  PEERExpertBank(const std::string& prefix, const PEERConfig& cfg);
  Param down;  // [N, d]: u_i, the neuron's input weights ("<prefix>.experts.down.weight")
  Param up;    // [N, d]: v_i, the neuron's output weights ("<prefix>.experts.up.weight")

  // y, x: [n, d]; x and plan must stay alive until backward.
  void forward(float* y, const float* x, const RoutingPlan& plan);
  // dx: [n, d] assigned; dweight: [n, h*k] assigned (gradient w.r.t. plan.weight); table gradients
  // accumulate into down.g / up.g (row-sparse).
  void backward(float* dx, float* dweight, const float* dy);
  void params(ParamList& out);

 private:
  void table_grads(const float* dy);

  PEERConfig c_;
  const float* x_ = nullptr;
  const RoutingPlan* plan_ = nullptr;
  int64_t n_ = 0;
  Tensor z_;    // [n, h*k] pre-activations u_e . x_t
  Tensor dz_;   // [n, h*k] gradient of the pre-activation
  Tensor wa_;   // [n, h*k] w_s act(z): the coefficient of dy in v_e's gradient
  std::vector<int32_t> count_;      // [N + 1] counting sort of slots by expert
  std::vector<int32_t> by_expert_;  // [n*h*k] slot indices grouped by expert, token order within
  std::vector<int64_t> rows_;       // the distinct experts retrieved, ascending
  std::vector<int32_t> row_start_;  // [rows + 1] into by_expert_
  Tensor gdown_, gup_;              // [rows, d] when the parameters already hold gradient rows
};

}  // namespace moe
