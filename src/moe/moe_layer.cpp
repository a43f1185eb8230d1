#include "moe/moe_layer.h"

namespace moe {

MoELayer::MoELayer(std::unique_ptr<Router> router, std::unique_ptr<ExpertBank> bank, int d_model)
    : router_(std::move(router)), bank_(std::move(bank)), d_(d_model) {}

void MoELayer::params(ParamList& out) {
  router_->params(out);
  bank_->params(out);
}

void MoELayer::forward(float* y, const float* x, int64_t n) {
  n_ = n;
  router_->forward(plan_, x, n);
  dispatch_.build(plan_);
  const int64_t M = dispatch_.rows();
  xs_.resize({M, d_});
  ys_.resize({M, d_});
  dispatch_.gather(xs_.data(), x, d_);
  bank_->forward(ys_.data(), xs_.data(), dispatch_.offsets);
  dispatch_.combine(y, ys_.data(), plan_, d_);
}

void MoELayer::backward(float* dx, const float* dy) {
  // The grouped buffers are reused in place: dys over ys (each row is read, then written, by the
  // one slot it belongs to) and dxs over xs (banks read an expert's rows before writing them).
  dweight_.resize(n_ * plan_.k);
  float* dys = ys_.data();
  float* dxs = xs_.data();
  dispatch_.combine_backward(dys, dweight_.data(), dy, ys_.data(), plan_, d_);
  bank_->backward(dxs, dys);
  dispatch_.gather_backward(dx, dxs, n_, d_);
  router_->backward(dx, dweight_.data());
}

}  // namespace moe
