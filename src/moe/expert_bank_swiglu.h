#pragma once
// A bank of local SwiGLU experts with Mixtral names: "<prefix>.experts.{e}.w1/w3/w2.weight"
// (w1 = gate proj [F, d], w3 = up proj [F, d], w2 = down proj [d, F]).
#include <memory>
#include <string>

#include "moe/expert_bank.h"
#include "nn/swiglu.h"

namespace moe {

struct SwiGLUBankConfig {
  int d_model = 0;
  int d_ff = 0;
  int n_experts = 0;
};

class SwiGLUExpertBank final : public ExpertBank {
 public:
  SwiGLUExpertBank(const std::string& prefix, const SwiGLUBankConfig& cfg);
  std::vector<std::unique_ptr<Param>> w1, w3, w2;  // per expert

  int n_experts() const override { return c_.n_experts; }
  void forward(float* ys, const float* xs, const std::vector<int64_t>& offsets) override;
  void backward(float* dxs, const float* dys) override;
  void params(ParamList& out) override;

 private:
  SwiGLUWeights weights(int e) const;
  SwiGLUBankConfig c_;
  const float* xs_ = nullptr;
  std::vector<int64_t> offsets_;
  Tensor g_, u_, h_, dh_, du_;  // [M, F]
};

}  // namespace moe
