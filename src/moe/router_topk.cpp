#include "moe/router_topk.h"

#include <cmath>

#include "kernels/gemm.h"
#include "kernels/softmax.h"
#include "kernels/topk.h"

namespace moe {

TopKRouter::TopKRouter(const std::string& name, const TopKRouterConfig& c)
    : gate(name, {c.n_expert, c.d_model}), c_(c) {
  if (c.k < 1 || c.k > c.n_expert)
    throw Error("[router] top-k: k = " + std::to_string(c.k) + " must be in [1, " + std::to_string(c.n_expert) + "]");
}

void TopKRouter::forward(RoutingPlan& plan, const float* x, int64_t n) {
  const int E = c_.n_expert, k = c_.k;
  x_ = x;
  n_ = n;
  plan_ = &plan;
  logits_.resize({n, E});
  probs_.resize({n, E});
  lse_.resize({n});
  val_.resize(n * k);
  prepare_plan(plan, n, k, E);
  kernels::linear_forward(logits_.data(), x, gate.w.data(), n, c_.d_model, E);
  kernels::logsumexp_rows(lse_.data(), logits_.data(), n, E);
  kernels::softmax_forward(probs_.data(), logits_.data(), n, E);
  kernels::topk_rows(plan.expert.data(), val_.data(), probs_.data(), n, E, k);
  sel_.assign(plan.expert.begin(), plan.expert.end());
  for (int64_t t = 0; t < n; ++t) {
    float s = 0;
    for (int j = 0; j < k; ++j) s += val_[t * k + j];
    const float inv = c_.norm_topk_prob ? 1.0f / s : 1.0f;
    for (int j = 0; j < k; ++j) plan.weight[t * k + j] = val_[t * k + j] * inv;
  }
  // Statistics and auxiliary losses. f_i counts the router's choices before any capacity drop.
  RouterStats& st = plan.stats;
  std::vector<int64_t> chosen(E, 0);
  for (int64_t i = 0; i < n * k; ++i) chosen[sel_[i]]++;
  st.dropped = 0;
  const float cf = training_ ? c_.capacity_factor : c_.eval_capacity_factor;
  if (cf > 0) {
    const int64_t cap = int64_t(std::ceil(double(cf) * double(n) * k / E));
    std::vector<int64_t> used(E, 0);
    for (int j = 0; j < k; ++j)
      for (int64_t t = 0; t < n; ++t) {
        int32_t& e = plan.expert[t * k + j];
        if (used[e] < cap) used[e]++;
        else e = -1, st.dropped++;
      }
    st.tokens_per_expert = used;
  } else {
    st.tokens_per_expert = chosen;
  }
  frac_.assign(E, 0.0);
  std::vector<double> pmean(E, 0.0);
  double z = 0, ent = 0;
  for (int64_t t = 0; t < n; ++t) {
    const float* p = probs_.data() + t * E;
    for (int e = 0; e < E; ++e) {
      pmean[e] += p[e];
      if (p[e] > 0) ent -= double(p[e]) * std::log(double(p[e]));
    }
    z += double(lse_[t]) * lse_[t];
  }
  double aux = 0;
  for (int e = 0; e < E; ++e) {
    frac_[e] = n ? double(chosen[e]) / double(n * k) : 0.0;
    pmean[e] = n ? pmean[e] / n : 0.0;
    aux += frac_[e] * pmean[e];
  }
  st.aux_loss = E * aux;
  // Sequence-wise: f and P within each sequence of T tokens.
  const int64_t T = seq_len_ > 0 && n % seq_len_ == 0 ? seq_len_ : n;
  const int64_t S = T ? n / T : 0;
  seq_frac_.assign(S * E, 0.0);
  double seq = 0;
  for (int64_t q = 0; q < S; ++q) {
    std::vector<double> pm(E, 0.0);
    for (int64_t t = q * T; t < (q + 1) * T; ++t) {
      for (int j = 0; j < k; ++j) seq_frac_[q * E + sel_[t * k + j]] += 1.0 / double(T * k);
      for (int e = 0; e < E; ++e) pm[e] += probs_[t * E + e] / double(T);
    }
    for (int e = 0; e < E; ++e) seq += E * seq_frac_[q * E + e] * pm[e];
  }
  st.seq_aux_loss = S ? seq / double(S) : 0.0;
  st.z_loss = n ? z / n : 0.0;
  st.entropy = n ? ent / n : 0.0;
}

double TopKRouter::aux_objective() const {
  if (!plan_) return 0;
  return c_.aux_coef * plan_->stats.aux_loss + c_.z_coef * plan_->stats.z_loss +
         c_.seq_aux_coef * plan_->stats.seq_aux_loss;
}

void TopKRouter::backward(float* dx, const float* dweight) {
  const int E = c_.n_expert, k = c_.k;
  const int64_t n = n_;
  dlogits_.resize({n, E});
  float* dl = dlogits_.data();
  const float aux_scale = n ? float(c_.aux_coef * E / double(n)) : 0.0f;
  const int64_t n_seq = int64_t(seq_frac_.size()) / E, T = n_seq ? n / n_seq : n;
  const float seq_scale = n_seq ? float(c_.seq_aux_coef * E / double(T * n_seq)) : 0.0f;
  const float z_scale = n ? float(2.0 * c_.z_coef / double(n)) : 0.0f;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n; ++t) {
    const float* p = probs_.data() + t * E;
    float* dp = dl + t * E;  // first dL/dp, then dL/dlogits in place
    for (int e = 0; e < E; ++e) dp[e] = aux_scale * float(frac_[e]);  // d(aux)/dP_e / n
    if (seq_scale != 0)
      for (int e = 0; e < E; ++e) dp[e] += seq_scale * float(seq_frac_[(t / T) * E + e]);
    const int32_t* ex = sel_.data() + t * k;  // dropped slots have dweight 0 but keep their index
    const float* dw = dweight + t * k;
    const float* v = val_.data() + t * k;
    if (c_.norm_topk_prob) {
      // w_j = v_j / S: dv_j = dw_j / S - sum_l dw_l v_l / S^2
      float S = 0, dot = 0;
      for (int j = 0; j < k; ++j) S += v[j], dot += dw[j] * v[j];
      for (int j = 0; j < k; ++j) dp[ex[j]] += dw[j] / S - dot / (S * S);
    } else {
      for (int j = 0; j < k; ++j) dp[ex[j]] += dw[j];
    }
    // softmax backward: dlogit = p * (dp - sum(dp * p)); z-loss: d/dlogit lse^2 = 2 lse p
    float s = 0;
    for (int e = 0; e < E; ++e) s += dp[e] * p[e];
    for (int e = 0; e < E; ++e) dp[e] = p[e] * (dp[e] - s) + z_scale * lse_[t] * p[e];
  }
  gate_backward(dx, gate, dl, x_, n);
}

}  // namespace moe
