#include "nn/rmsnorm.h"

#include "kernels/rmsnorm.h"

namespace moe {

void RMSNorm::forward(float* y, const float* x, int64_t n) {
  x_ = x;
  n_ = n;
  rstd_.resize({n});
  kernels::rmsnorm_forward(y, rstd_.data(), x, weight.w.data(), n, dim_, eps_);
}

void RMSNorm::apply(float* y, const float* x, int64_t n) const {
  kernels::rmsnorm_forward(y, nullptr, x, weight.w.data(), n, dim_, eps_);
}

void RMSNorm::backward(float* dx, const float* dy) {
  kernels::rmsnorm_backward(dx, weight.g.data(), dy, x_, weight.w.data(), rstd_.data(), n_, dim_);
}

}  // namespace moe
