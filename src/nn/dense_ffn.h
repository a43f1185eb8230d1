#pragma once
// Dense SwiGLU feed-forward (Mistral-style names: mlp.gate_proj / up_proj / down_proj).
#include "nn/ffn.h"
#include "nn/param.h"
#include "nn/swiglu.h"

namespace moe {

class DenseFFN final : public FFN {
 public:
  DenseFFN(const std::string& prefix, int d, int f);  // prefix: "model.layers.0.mlp"
  Param gate_proj, up_proj, down_proj;  // [F, d], [F, d], [d, F]
  void params(ParamList& out) override { out.insert(out.end(), {&gate_proj, &up_proj, &down_proj}); }

  // x, y: [n, d]; x must stay alive until backward, which runs at most once per forward.
  void forward(float* y, const float* x, int64_t n);
  void forward(float* y, const float* x, int64_t n, int64_t) override { forward(y, x, n); }
  void backward(float* dx, const float* dy) override;

 private:
  SwiGLUWeights weights() const;
  int64_t d_, f_, n_ = 0;
  const float* x_ = nullptr;
  Tensor g_, u_, h_;  // [n, F] saved by forward, overwritten by backward
};

}  // namespace moe
