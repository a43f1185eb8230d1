#include "nn/dense_ffn.h"

namespace moe {

DenseFFN::DenseFFN(const std::string& p, int d, int f)
    : gate_proj(p + ".gate_proj.weight", {f, d}),
      up_proj(p + ".up_proj.weight", {f, d}),
      down_proj(p + ".down_proj.weight", {d, f}),
      d_(d),
      f_(f) {
  for (Param* w : {&gate_proj, &up_proj, &down_proj}) w->may_stay_16bit = true;  // read through weights()
}

SwiGLUWeights DenseFFN::weights() const {
  return {.w1 = gate_proj.matrix(), .w3 = up_proj.matrix(), .w2 = down_proj.matrix(), .d = d_, .f = f_};
}

void DenseFFN::forward(float* y, const float* x, int64_t n) {
  x_ = x;
  n_ = n;
  g_.resize({n, f_});
  u_.resize({n, f_});
  h_.resize({n, f_});
  swiglu_mlp_forward(y, g_.data(), u_.data(), h_.data(), x, n, weights());
}

void DenseFFN::backward(float* dx, const float* dy) {
  SwiGLUGrads gr{.w1 = gate_proj.g.data(), .w3 = up_proj.g.data(), .w2 = down_proj.g.data()};
  swiglu_mlp_backward(dx, gr, dy, x_, g_.data(), u_.data(), h_.data(), n_, weights());
}

}  // namespace moe
