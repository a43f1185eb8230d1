#include "moe/router_topk.h"

#include <algorithm>
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
  // Unreachable experts get probability 0 (and no gradient); only when k others remain.
  if (available_ && std::count(available_->begin(), available_->end(), uint8_t{1}) >= k)
    for (int64_t t = 0; t < n; ++t)
      for (int e = 0; e < E; ++e)
        if (!(*available_)[e]) logits_[t * E + e] = -INFINITY;
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
  // Statistics and auxiliary losses over the whole batch (all ranks of the data group). f_i counts
  // the router's choices before any capacity drop.
  RouterStats& st = plan.stats;
  const int R = group_.size();
  // One record per rank: [k, E] choices per slot, then E sums of p, z, entropy, the sequence-wise
  // loss and the sequence count (filled below). Gathered in one collective; every rank sums the
  // records in rank order, so all get the same bits.
  const size_t kE = size_t(k) * E, m = kE + E + 4;
  std::vector<double> rec(m, 0.0);
  for (int64_t t = 0; t < n; ++t)
    for (int j = 0; j < k; ++j) rec[size_t(j) * E + sel_[t * k + j]] += 1;
  double* sums = rec.data() + kE;
  double* pmean = sums;
  for (int64_t t = 0; t < n; ++t) {
    const float* p = probs_.data() + t * E;
    for (int e = 0; e < E; ++e) {
      pmean[e] += p[e];
      if (p[e] > 0) sums[E + 1] -= double(p[e]) * std::log(double(p[e]));
    }
    sums[E] += double(lse_[t]) * lse_[t];
  }
  // Sequence-wise: f and P within each sequence of T tokens (a sequence is never split by ranks).
  const int64_t T = seq_len_ > 0 && n % seq_len_ == 0 ? seq_len_ : n;
  const int64_t S = T ? n / T : 0;
  seq_frac_.assign(S * E, 0.0);
  for (int64_t q = 0; q < S; ++q) {
    std::vector<double> pm(E, 0.0);
    for (int64_t t = q * T; t < (q + 1) * T; ++t) {
      for (int j = 0; j < k; ++j) seq_frac_[q * E + sel_[t * k + j]] += 1.0 / double(T * k);
      for (int e = 0; e < E; ++e) pm[e] += probs_[t * E + e] / double(T);
    }
    for (int e = 0; e < E; ++e) sums[E + 2] += E * seq_frac_[q * E + e] * pm[e];
  }
  sums[E + 3] = double(S);
  // [R, m]: every rank's record in rank order (global token order, for the capacity's prefix).
  const std::vector<double> all = R > 1 ? group_.all_gather_n(rec.data(), int64_t(m)) : rec;
  auto picks = [&](int r, int j, int e) { return int64_t(all[size_t(r) * m + size_t(j) * E + e]); };
  std::vector<double> total(E + 4, 0.0);
  std::vector<int64_t> chosen(E, 0);
  int64_t N = 0;  // tokens of the whole batch: each has exactly one first choice
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < k; ++j)
      for (int e = 0; e < E; ++e) chosen[e] += picks(r, j, e);
    for (int e = 0; e < E; ++e) N += picks(r, 0, e);
    for (int i = 0; i < E + 4; ++i) total[i] += all[size_t(r) * m + kE + i];
  }
  n_global_ = N;
  st.batch_tokens = N;
  st.dropped = 0;
  const float cf = training_ ? c_.capacity_factor : c_.eval_capacity_factor;
  if (cf > 0) {
    // Slots are taken in global token order, all first choices before any second choice. After x
    // picks of expert e from u taken slots, min(cap, u + x) are taken: so this rank starts slot j
    // where the lower ranks' picks of slot j left the count.
    const int64_t cap = int64_t(std::ceil(double(cf) * double(N) * k / E));
    const int me = group_.rank();
    std::vector<int64_t> taken(E, 0), used(E);
    for (int j = 0; j < k; ++j) {
      for (int e = 0; e < E; ++e) {
        int64_t before = 0, slot_total = 0;
        for (int r = 0; r < R; ++r) {
          const int64_t c = picks(r, j, e);
          slot_total += c;
          if (r < me) before += c;
        }
        used[e] = std::min(cap, taken[e] + before);
        taken[e] = std::min(cap, taken[e] + slot_total);
      }
      for (int64_t t = 0; t < n; ++t) {
        int32_t& e = plan.expert[t * k + j];
        if (used[e] < cap) used[e]++;
        else e = -1;
      }
    }
    st.tokens_per_expert = taken;
    for (int e = 0; e < E; ++e) st.dropped += chosen[e] - taken[e];
  } else {
    st.tokens_per_expert = chosen;
  }
  seq_global_ = int64_t(total[E + 3]);
  frac_.assign(E, 0.0);
  double aux = 0;
  for (int e = 0; e < E; ++e) {
    frac_[e] = N ? double(chosen[e]) / double(N * k) : 0.0;
    aux += frac_[e] * (N ? total[e] / double(N) : 0.0);
  }
  st.aux_loss = E * aux;
  st.seq_aux_loss = seq_global_ ? total[E + 2] / double(seq_global_) : 0.0;
  st.z_loss = N ? total[E] / double(N) : 0.0;
  st.entropy = N ? total[E + 1] / double(N) : 0.0;
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
  // Scales of the global objective (n_global_ tokens, seq_global_ sequences over all ranks).
  const double N = double(n_global_);
  const float aux_scale = N > 0 ? float(c_.aux_coef * E / N) : 0.0f;
  const int64_t n_seq = int64_t(seq_frac_.size()) / E, T = n_seq ? n / n_seq : n;
  const float seq_scale = seq_global_ ? float(c_.seq_aux_coef * E / double(T * seq_global_)) : 0.0f;
  const float z_scale = N > 0 ? float(2.0 * c_.z_coef / N) : 0.0f;
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
