#pragma once
// The FFN of a sparse layer: routed experts (MoELayer), plus optional always-on shared experts
// (DeepSeekMoE's n_shared_experts, Qwen2-MoE's shared_expert), whose output may be scaled by a
// sigmoid gate (Qwen2-MoE):  y = moe(x) + [sigmoid(x . w_s)] * shared(x)
#include <memory>

#include "moe/moe_layer.h"
#include "nn/dense_ffn.h"
#include "nn/ffn.h"

namespace moe {

class RoutedFFN final : public FFN {
 public:
  // shared, shared_gate ([1, d]): optional (null).
  RoutedFFN(std::unique_ptr<MoELayer> moe, std::unique_ptr<DenseFFN> shared, std::unique_ptr<Param> shared_gate,
            int d_model);

  void params(ParamList& out) override;
  void forward(float* y, const float* x, int64_t n, int64_t T) override;
  void backward(float* dx, const float* dy) override;

  void set_training(bool training) override { moe_->router().set_training(training); }
  void after_step() override { moe_->router().after_step(); }
  void restore_steps(int64_t steps) override { moe_->router().restore_steps(steps); }
  void set_learning_rate(float lr) override { moe_->bank().set_learning_rate(lr); }
  void set_data_group(const dist::Communicator& group) override { moe_->router().set_data_group(group); }
  bool causal() const override { return moe_->router().causal(); }
  double aux_objective() const override { return moe_->router().aux_objective(); }
  MoELayer* routed() override { return moe_.get(); }

 private:
  std::unique_ptr<MoELayer> moe_;
  std::unique_ptr<DenseFFN> shared_;
  std::unique_ptr<Param> shared_gate_;
  int64_t d_, n_ = 0;
  const float* x_ = nullptr;
  Tensor shared_out_;   // [n, d]
  Tensor gate_;         // [n]: sigmoid(x w_s)
  Tensor dgated_;       // [n, d]
  Tensor dgate_logit_;  // [n]
  Tensor dshared_x_;    // [n, d]
};

}  // namespace moe
