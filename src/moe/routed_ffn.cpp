#include "moe/routed_ffn.h"

#include <cmath>

#include "kernels/gemm.h"

namespace moe {

RoutedFFN::RoutedFFN(std::unique_ptr<MoELayer> moe, std::unique_ptr<DenseFFN> shared,
                     std::unique_ptr<Param> shared_gate, int d_model)
    : moe_(std::move(moe)), shared_(std::move(shared)), shared_gate_(std::move(shared_gate)), d_(d_model) {}

void RoutedFFN::params(ParamList& out) {
  moe_->params(out);
  if (shared_) shared_->params(out);
  if (shared_gate_) out.push_back(shared_gate_.get());
}

void RoutedFFN::forward(float* y, const float* x, int64_t n, int64_t T) {
  n_ = n;
  x_ = x;
  moe_->router().set_sequence_length(T);
  moe_->forward(y, x, n);
  if (!shared_) return;
  shared_out_.resize({n, d_});
  shared_->forward(shared_out_.data(), x, n);
  if (!shared_gate_) {
    for (int64_t i = 0; i < n * d_; ++i) y[i] += shared_out_[i];
    return;
  }
  // y += sigmoid(x . w_s) * shared(x)
  gate_.resize({n});
  kernels::linear_forward(gate_.data(), x, shared_gate_->w.data(), n, d_, 1);
  for (int64_t t = 0; t < n; ++t) {
    const float g = gate_[t] = 1.0f / (1.0f + std::exp(-gate_[t]));
    for (int64_t i = 0; i < d_; ++i) y[t * d_ + i] += g * shared_out_[t * d_ + i];
  }
}

void RoutedFFN::backward(float* dx, const float* dy) {
  const int64_t n = n_;
  moe_->backward(dx, dy);
  if (!shared_) return;
  const float* dshared = dy;
  if (shared_gate_) {
    // y = g s(x), g = sigmoid(z), z = x . w_s:  ds = g dy;  dz = <s, dy> g (1 - g)
    dgated_.resize({n, d_});
    dgate_logit_.resize({n});
    float* dz = dgate_logit_.data();
    for (int64_t t = 0; t < n; ++t) {
      const float g = gate_[t];
      float dot = 0;
      for (int64_t i = 0; i < d_; ++i) {
        dot += shared_out_[t * d_ + i] * dy[t * d_ + i];
        dgated_[t * d_ + i] = g * dy[t * d_ + i];
      }
      dz[t] = dot * g * (1.0f - g);
    }
    kernels::linear_backward_input(dx, dz, shared_gate_->w.data(), n, d_, 1, /*accumulate=*/true);
    kernels::linear_backward_weight(shared_gate_->g.data(), dz, x_, n, d_, 1);
    dshared = dgated_.data();
  }
  dshared_x_.resize({n, d_});
  shared_->backward(dshared_x_.data(), dshared);
  for (int64_t i = 0; i < n * d_; ++i) dx[i] += dshared_x_[i];
}

}  // namespace moe
