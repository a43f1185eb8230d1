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
  // Experts choose among the tokens of the whole batch. Under data parallelism every rank gathers
  // all ranks' scores (N x E floats, little next to the rows the experts then exchange), makes the
  // same choices, and keeps the slots of its own tokens (global tokens first .. first + n - 1).
  const float* P = probs_.data();
  int64_t N = n, first = 0;
  std::vector<float> all;
  if (group_.size() > 1) {
    std::vector<int64_t> counts;
    all = group_.all_gather_v(std::vector<float>(probs_.data(), probs_.data() + n * E), &counts);
    N = int64_t(all.size()) / E;
    for (int r = 0; r < group_.rank(); ++r) first += counts[r] / E;
    P = all.data();
  }
  n_global_ = N;
  plan.stats.batch_tokens = N;
  const int64_t C = std::min<int64_t>(N, int64_t(std::ceil(double(N) * c_.capacity / E)));
  RouterStats& st = plan.stats;
  st.tokens_per_expert.assign(E, C);
#pragma omp parallel for schedule(static)
  for (int e = 0; e < E; ++e) {
    std::vector<int64_t> order(N);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + C, order.end(), [&](int64_t a, int64_t b) {
      const float pa = P[a * E + e], pb = P[b * E + e];
      return pa > pb || (pa == pb && a < b);
    });
    for (int64_t i = 0; i < C; ++i) {
      const int64_t t = order[i] - first;
      if (t < 0 || t >= n) continue;  // another rank's token
      plan.expert[t * E + e] = e;
      plan.weight[t * E + e] = P[order[i] * E + e];
    }
  }
  double sums[3] = {0, 0, 0};  // dropped tokens, z-loss sum, entropy sum
  for (int64_t t = 0; t < n; ++t) {
    bool any = false;
    for (int e = 0; e < E; ++e) {
      any = any || plan.expert[t * E + e] >= 0;
      const double p = probs_[t * E + e];
      if (p > 0) sums[2] -= p * std::log(p);
    }
    sums[0] += !any;
    sums[1] += double(lse_[t]) * lse_[t];
  }
  if (group_.size() > 1) group_.all_reduce_sum(sums, 3);
  st.dropped = int64_t(sums[0]);
  st.aux_loss = 1.0;  // balanced by construction: the Switch loss would be exactly 1
  st.z_loss = N ? sums[1] / double(N) : 0.0;
  st.entropy = N ? sums[2] / double(N) : 0.0;
}

double ExpertChoiceRouter::aux_objective() const { return plan_ ? c_.z_coef * plan_->stats.z_loss : 0.0; }

void ExpertChoiceRouter::backward(float* dx, const float* dweight) {
  const int E = c_.n_expert;
  const int64_t n = n_;
  dlogits_.resize({n, E});
  float* dl = dlogits_.data();
  const float z_scale = n_global_ ? float(2.0 * c_.z_coef / double(n_global_)) : 0.0f;
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
