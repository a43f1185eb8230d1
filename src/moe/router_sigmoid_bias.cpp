#include "moe/router_sigmoid_bias.h"

#include <algorithm>
#include <cmath>

#include "kernels/gemm.h"
#include "kernels/topk.h"

namespace moe {

SigmoidBiasRouter::SigmoidBiasRouter(const std::string& name, const SigmoidBiasRouterConfig& c)
    : gate(name, {c.n_expert, c.d_model}),
      bias(name.substr(0, name.rfind(".weight")) + ".e_score_correction_bias", {c.n_expert}, /*wd=*/false),
      c_(c) {
  bias.trainable = false;
  if (c.k < 1 || c.k > c.n_expert)
    throw Error("[router] sigmoid_bias: k = " + std::to_string(c.k) + " must be in [1, " + std::to_string(c.n_expert) + "]");
}

void SigmoidBiasRouter::forward(RoutingPlan& plan, const float* x, int64_t n) {
  const int E = c_.n_expert, k = c_.k;
  x_ = x;
  n_ = n;
  plan_ = &plan;
  logits_.resize({n, E});
  scores_.resize({n, E});
  biased_.resize({n, E});
  val_.resize(n * k);
  prepare_plan(plan, n, k, E);
  kernels::linear_forward(logits_.data(), x, gate.w.data(), n, c_.d_model, E);
  for (int64_t i = 0; i < n * E; ++i) {
    scores_[i] = 1.0f / (1.0f + std::exp(-logits_[i]));
    biased_[i] = scores_[i] + bias.w[i % E];
  }
  kernels::topk_rows(plan.expert.data(), val_.data(), biased_.data(), n, E, k);
  // Statistics, the balancing losses and the bias update's load over the whole batch (all ranks of
  // the data group).
  RouterStats& st = plan.stats;
  st.dropped = 0;
  std::vector<double> sums(E + 3, 0.0);  // [E] sums of the normalised scores, entropy, seq loss, S
  const double* pmean = sums.data();
  weigh_chosen_scores(plan, scores_.data(), n, k, E, [&](float sum) {
    return (c_.norm_topk_prob ? 1.0f / sum : 1.0f) * c_.routed_scaling_factor;
  }, sums);
  // Sequence-wise: f and P within each sequence of T tokens (a sequence is never split by ranks).
  const int64_t T = seq_len_ > 0 && n % seq_len_ == 0 ? seq_len_ : n;
  const int64_t S = T ? n / T : 0;
  seq_frac_.assign(S * E, 0.0);
  std::vector<double> pm(E);
  for (int64_t q = 0; q < S; ++q) {
    std::fill(pm.begin(), pm.end(), 0.0);
    for (int64_t t = q * T; t < (q + 1) * T; ++t) {
      const float* s = scores_.data() + t * E;
      double all = 0;
      for (int e = 0; e < E; ++e) all += s[e];
      for (int e = 0; e < E; ++e) pm[e] += s[e] / all / double(T);
      for (int j = 0; j < k; ++j) seq_frac_[q * E + plan.expert[t * k + j]] += 1.0 / double(T * k);
    }
    for (int e = 0; e < E; ++e) sums[E + 1] += E * seq_frac_[q * E + e] * pm[e];
  }
  sums[E + 2] = double(S);
  const int64_t N = reduce_over_group(st, sums, k);  // loads and sums over the ranks
  n_global_ = N;
  st.batch_tokens = N;
  seq_global_ = int64_t(sums[E + 2]);
  frac_.assign(E, 0.0);
  double aux = 0;
  for (int e = 0; e < E; ++e) {
    frac_[e] = N ? double(st.tokens_per_expert[e]) / double(N * k) : 0.0;
    aux += frac_[e] * (N ? pmean[e] / double(N) : 0.0);
  }
  st.aux_loss = E * aux;
  st.seq_aux_loss = seq_global_ ? sums[E + 1] / double(seq_global_) : 0.0;
  st.z_loss = 0;
  st.entropy = N ? sums[E] / double(N) : 0.0;
  if (training_) load_ = st.tokens_per_expert;
}

double SigmoidBiasRouter::aux_objective() const {
  return plan_ ? c_.aux_coef * plan_->stats.aux_loss + c_.seq_aux_coef * plan_->stats.seq_aux_loss : 0.0;
}

void SigmoidBiasRouter::backward(float* dx, const float* dweight) {
  const int E = c_.n_expert, k = c_.k;
  const int64_t n = n_;
  dlogits_.resize({n, E});
  float* dl = dlogits_.data();
  // Scales of the global objective (n_global_ tokens, seq_global_ sequences over all ranks).
  const float aux_scale = n_global_ ? float(c_.aux_coef * E / double(n_global_)) : 0.0f;
  const int64_t n_seq = int64_t(seq_frac_.size()) / E, T = n_seq ? n / n_seq : n;
  const float seq_scale = seq_global_ ? float(c_.seq_aux_coef * E / double(T * seq_global_)) : 0.0f;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n; ++t) {
    const float* s = scores_.data() + t * E;
    float* ds = dl + t * E;  // dL/ds, then dL/dlogit in place
    const int32_t* ex = plan_->expert.data() + t * k;
    const float* dw = dweight + t * k;
    for (int e = 0; e < E; ++e) ds[e] = 0;
    float S = 0, dot = 0;
    for (int j = 0; j < k; ++j) S += s[ex[j]], dot += dw[j] * s[ex[j]];
    const float r = c_.routed_scaling_factor;
    for (int j = 0; j < k; ++j)
      ds[ex[j]] += c_.norm_topk_prob ? r * (dw[j] / S - dot / (S * S)) : r * dw[j];
    if (aux_scale != 0 || seq_scale != 0) {
      // aux = E sum_i f_i mean_t q_ti, q = s / sum(s), and the same within the token's sequence:
      // dq_i = aux_scale f_i + seq_scale f_seq,i; ds = (dq - <dq, q>) / sum(s)
      const double* fs = seq_scale != 0 ? seq_frac_.data() + (t / T) * E : nullptr;
      auto dq = [&](int e) { return aux_scale * float(frac_[e]) + (fs ? seq_scale * float(fs[e]) : 0.0f); };
      float all = 0, qdot = 0;
      for (int e = 0; e < E; ++e) all += s[e];
      for (int e = 0; e < E; ++e) qdot += dq(e) * s[e] / all;
      for (int e = 0; e < E; ++e) ds[e] += (dq(e) - qdot) / all;
    }
    for (int e = 0; e < E; ++e) ds[e] *= s[e] * (1.0f - s[e]);
  }
  gate_backward(dx, gate, dl, x_, n);
}

void SigmoidBiasRouter::after_step() { update_balance_bias(bias, load_, c_.bias_update_speed); }

}  // namespace moe
