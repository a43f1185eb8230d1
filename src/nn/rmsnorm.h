#pragma once
// RMSNorm layer (Llama/Mixtral): y = x / sqrt(mean(x^2) + eps) * w. Keeps rstd for the backward.
#include "nn/param.h"

namespace moe {

class RMSNorm {
 public:
  RMSNorm(const std::string& name, int dim, float eps) : weight(name, {dim}, /*decay=*/false), dim_(dim), eps_(eps) {
    if (weight.w.has_storage())  // not when a loader fills it (DeferredWeights)
      for (int i = 0; i < dim; ++i) weight.w[i] = 1.0f;
  }
  Param weight;  // [dim]

  // y, x: [n, dim]. x must stay alive until backward().
  void forward(float* y, const float* x, int64_t n);
  // Inference: nothing is saved.
  void apply(float* y, const float* x, int64_t n) const;
  // dx: [n, dim] assigned; weight.g accumulated.
  void backward(float* dx, const float* dy);

 private:
  int dim_;
  float eps_;
  const float* x_ = nullptr;
  int64_t n_ = 0;
  Tensor rstd_;  // [n]
};

}  // namespace moe
