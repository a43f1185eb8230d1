#pragma once
// A bank of local SwiGLU experts named "<prefix>.experts.{e}.<name>.weight": Mixtral's w1 (gate
// proj [F, d]), w3 (up proj [F, d]), w2 (down proj [d, F]), or Qwen2-MoE's gate/up/down_proj.
#include <memory>
#include <string>

#include "moe/expert_bank.h"
#include "nn/swiglu.h"

namespace moe {

struct SwiGLUBankConfig {
  int d_model = 0;
  int d_ff = 0;
  int n_experts = 0;
  int first_expert = 0;  // tensor names count from here (a rank's shard of an expert-parallel layer)
  // Tensor names of an expert's gate / up / down projections: Mixtral's, or Qwen2-MoE's
  // ("gate_proj", "up_proj", "down_proj").
  const char* gate_name = "w1";
  const char* up_name = "w3";
  const char* down_name = "w2";
};

class SwiGLUExpertBank final : public ExpertBank {
 public:
  SwiGLUExpertBank(const std::string& prefix, const SwiGLUBankConfig& cfg);
  std::vector<std::unique_ptr<Param>> w1, w3, w2;  // per expert

  int n_experts() const override { return c_.n_experts; }
  void forward(float* ys, const float* xs, const std::vector<int64_t>& offsets) override;
  void backward(float* dxs, const float* dys) override;
  void params(ParamList& out) override;
  void set_row_blocks(const std::vector<int64_t>& counts, int blocks) override {
    row_blocks_ = counts, n_blocks_ = blocks;
  }

 private:
  SwiGLUWeights weights(int e) const;
  SwiGLUBankConfig c_;
  const float* xs_ = nullptr;
  std::vector<int64_t> offsets_;
  Tensor g_, u_, h_;  // [M, F] saved by forward, overwritten by backward
  std::vector<int64_t> row_blocks_;  // [E, n_blocks_] (layout-exact mode)
  int n_blocks_ = 0;
};

}  // namespace moe
