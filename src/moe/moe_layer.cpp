#include "moe/moe_layer.h"

#include <algorithm>

#include "core/exact_sums.h"

namespace moe {

MoELayer::MoELayer(std::unique_ptr<Router> router, std::unique_ptr<ExpertBank> bank, int d_model)
    : router_(std::move(router)), bank_(std::move(bank)), d_(d_model) {}

void MoELayer::params(ParamList& out) {
  router_->params(out);
  bank_->params(out);
}

void MoELayer::forward(float* y, const float* x, int64_t n) {
  n_ = n;
  router_->set_available(bank_->available_experts());
  if (GridLiveness* live = bank_->grid_liveness()) router_->set_liveness(live);
  router_->forward(plan_, x, n);
  dispatch_.build(plan_);
  const int64_t M = dispatch_.rows();
  xs_.resize({M, d_});
  ys_.resize({M, d_});
  dispatch_.gather(xs_.data(), x, d_);
  bank_->observe_plan(plan_);
  if (exact::enabled()) set_row_blocks();
  bank_->forward(ys_.data(), xs_.data(), dispatch_.offsets);
  renormalised_ = false;
  if (const std::vector<uint8_t>* failed = bank_->failed_experts())
    if (std::find(failed->begin(), failed->end(), uint8_t{1}) != failed->end()) renormalise_over_answered(*failed);
  dispatch_.combine(y, ys_.data(), plan_, d_);
}

// Layout-exact mode: each expert's rows per block of the batch (blocks of equal token counts; one
// block when the tokens do not split, as in evaluation, which has no backward).
void MoELayer::set_row_blocks() {
  const int E = plan_.n_expert, k = plan_.k;
  const int nb = n_ % exact::blocks_per_rank() == 0 ? exact::blocks_per_rank() : 1;
  const int64_t per = n_ / nb;
  std::vector<int64_t> counts(size_t(E) * nb, 0);
  for (int64_t s = 0; s < n_ * k; ++s)
    if (const int32_t e = plan_.expert[s]; e >= 0) counts[size_t(e) * nb + size_t((s / k) / per)]++;
  bank_->set_row_blocks(counts, nb);
}

void MoELayer::renormalise_over_answered(const std::vector<uint8_t>& failed) {
  const int k = plan_.k;
  w_orig_ = plan_.weight;
  renormalised_ = true;
  for (int64_t t = 0; t < n_; ++t) {
    float* w = plan_.weight.data() + t * k;
    const int32_t* e = plan_.expert.data() + t * k;
    double all = 0, ok = 0;
    for (int j = 0; j < k; ++j)
      if (e[j] >= 0) {
        all += w[j];
        if (!failed[e[j]]) ok += w[j];
      }
    // No expert answered: weight 0 everywhere, the token keeps only the residual path.
    const double c = ok != 0 ? all / ok : 0.0;
    for (int j = 0; j < k; ++j) w[j] = (e[j] >= 0 && !failed[e[j]]) ? float(w[j] * c) : 0.0f;
  }
}

// d/dw_i of w'_j = w_j S_all / S_ok: for an answered slot i, c dw'_i + (1/S_ok - S_all/S_ok^2) G,
// for a failed slot G / S_ok, with G = sum over answered j of w_j dw'_j and c = S_all / S_ok.
void MoELayer::renormalise_backward(float* dweight) const {
  const int k = plan_.k;
  const std::vector<uint8_t>& failed = *bank_->failed_experts();
  for (int64_t t = 0; t < n_; ++t) {
    const float* w = w_orig_.data() + t * k;
    const int32_t* e = plan_.expert.data() + t * k;
    float* g = dweight + t * k;
    double all = 0, ok = 0, G = 0;
    for (int j = 0; j < k; ++j)
      if (e[j] >= 0) {
        all += w[j];
        if (!failed[e[j]]) {
          ok += w[j];
          G += double(w[j]) * g[j];
        }
      }
    for (int j = 0; j < k; ++j) {
      if (ok == 0 || e[j] < 0) {
        g[j] = 0;
      } else if (!failed[e[j]]) {
        g[j] = float(all / ok * g[j] + (1.0 / ok - all / (ok * ok)) * G);
      } else {
        g[j] = float(G / ok);
      }
    }
  }
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
  if (renormalised_) {
    renormalise_backward(dweight_.data());
    plan_.weight = w_orig_;  // the router sees the weights it made
  }
  router_->backward(dx, dweight_.data());
}

}  // namespace moe
