#include "moe/router_expert_choice.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/gemm.h"
#include "kernels/softmax.h"

namespace moe {

ExpertChoiceRouter::ExpertChoiceRouter(const std::string& name, const ExpertChoiceRouterConfig& c)
    : gate(name, {c.n_expert, c.d_model}), c_(c) {
  if (!(c.capacity > 0)) throw Error("[router] expert_choice: capacity must be positive");
}

void ExpertChoiceRouter::forward(RoutingPlan& plan, const float* x, int64_t n) {
  const int E = c_.n_expert;
  x_ = x;
  n_ = n;
  plan_ = &plan;
  logits_.resize({n, E});
  probs_.resize({n, E});
  lse_.resize({n});
  kernels::linear_forward(logits_.data(), x, gate.w.data(), n, c_.d_model, E);
  kernels::logsumexp_rows(lse_.data(), logits_.data(), n, E);
  kernels::softmax_forward(probs_.data(), logits_.data(), n, E);
  plan.n_tok = n;
  plan.k = E;
  plan.n_expert = E;
  plan.expert.assign(n * E, -1);
  plan.weight.assign(n * E, 0.0f);
  const int64_t C = std::min<int64_t>(n, int64_t(std::ceil(double(n) * c_.capacity / E)));
  RouterStats& st = plan.stats;
  st.tokens_per_expert.assign(E, C);
#pragma omp parallel for schedule(static)
  for (int e = 0; e < E; ++e) {
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + C, order.end(), [&](int64_t a, int64_t b) {
      const float pa = probs_[a * E + e], pb = probs_[b * E + e];
      return pa > pb || (pa == pb && a < b);
    });
    for (int64_t i = 0; i < C; ++i) {
      const int64_t t = order[i];
      plan.expert[t * E + e] = e;
      plan.weight[t * E + e] = probs_[t * E + e];
    }
  }
  st.dropped = 0;
  double z = 0, ent = 0;
  for (int64_t t = 0; t < n; ++t) {
    bool any = false;
    for (int e = 0; e < E; ++e) {
      any = any || plan.expert[t * E + e] >= 0;
      const double p = probs_[t * E + e];
      if (p > 0) ent -= p * std::log(p);
    }
    st.dropped += !any;
    z += double(lse_[t]) * lse_[t];
  }
  st.aux_loss = 1.0;  // balanced by construction: the Switch loss would be exactly 1
  st.z_loss = n ? z / double(n) : 0.0;
  st.entropy = n ? ent / double(n) : 0.0;
}

double ExpertChoiceRouter::aux_objective() const { return plan_ ? c_.z_coef * plan_->stats.z_loss : 0.0; }

void ExpertChoiceRouter::backward(float* dx, const float* dweight) {
  const int E = c_.n_expert;
  const int64_t n = n_;
  dlogits_.resize({n, E});
  float* dl = dlogits_.data();
  const float z_scale = n ? float(2.0 * c_.z_coef / double(n)) : 0.0f;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n; ++t) {
    const float* p = probs_.data() + t * E;
    float* dp = dl + t * E;
    for (int e = 0; e < E; ++e) dp[e] = plan_->expert[t * E + e] >= 0 ? dweight[t * E + e] : 0.0f;
    float s = 0;
    for (int e = 0; e < E; ++e) s += dp[e] * p[e];
    for (int e = 0; e < E; ++e) dp[e] = p[e] * (dp[e] - s) + z_scale * lse_[t] * p[e];
  }
  gate_backward(dx, gate, dl, x_, n);
}

}  // namespace moe
