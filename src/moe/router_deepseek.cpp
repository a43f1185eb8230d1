#include "moe/router_deepseek.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/gemm.h"
#include "kernels/topk.h"

namespace moe {

DeepSeekRouter::DeepSeekRouter(const std::string& name, const DeepSeekRouterConfig& c)
    : gate(name, {c.n_expert, c.d_model}), c_(c) {
  const std::string what = "[router] deepseek: ";
  if (c.k < 1 || c.k > c.n_expert)
    throw Error(what + "k = " + std::to_string(c.k) + " must be in [1, " + std::to_string(c.n_expert) + "]");
  if (c.method != DeepSeekRouterConfig::Method::greedy) {
    if (c.n_group < 1 || c.n_expert % c.n_group)
      throw Error(what + "n_group " + std::to_string(c.n_group) + " must divide the " + std::to_string(c.n_expert) +
                  " experts");
    if (c.topk_group < 1 || c.topk_group > c.n_group)
      throw Error(what + "topk_group " + std::to_string(c.topk_group) + " must be in [1, n_group]");
    if (c.topk_group * (c.n_expert / c.n_group) < c.k)
      throw Error(what + "the " + std::to_string(c.topk_group) + " eligible groups hold fewer than k = " +
                  std::to_string(c.k) + " experts");
    if (c.method == DeepSeekRouterConfig::Method::noaux_tc && c.n_expert / c.n_group < 2)
      throw Error(what + "noaux_tc scores groups by their two best experts: groups need >= 2 experts");
  }
  if (c.method == DeepSeekRouterConfig::Method::noaux_tc) {
    bias = std::make_unique<Param>(name.substr(0, name.rfind(".weight")) + ".e_score_correction_bias",
                                   Shape{c.n_expert}, /*wd=*/false);
    bias->trainable = false;
  }
}

void DeepSeekRouter::params(ParamList& out) {
  out.push_back(&gate);
  if (bias) out.push_back(bias.get());
}

void DeepSeekRouter::forward(RoutingPlan& plan, const float* x, int64_t n) {
  const int E = c_.n_expert, k = c_.k, G = c_.n_group, per = E / std::max(1, G);
  x_ = x;
  n_ = n;
  plan_ = &plan;
  logits_.resize({n, E});
  scores_.resize({n, E});
  choice_.resize({n, E});
  prepare_plan(plan, n, k, E);
  kernels::linear_forward(logits_.data(), x, gate.w.data(), n, c_.d_model, E);
  const bool grouped = c_.method != DeepSeekRouterConfig::Method::greedy && G > 1;
#pragma omp parallel if (n > 64)
  {
  std::vector<float> gs(G);  // per thread, not per token
  std::vector<int> order(G);
#pragma omp for schedule(static)
  for (int64_t t = 0; t < n; ++t) {
    const float* l = logits_.data() + t * E;
    float* s = scores_.data() + t * E;
    float* ch = choice_.data() + t * E;
    if (c_.sigmoid) {
      for (int e = 0; e < E; ++e) s[e] = 1.0f / (1.0f + std::exp(-l[e]));
    } else {
      const float m = *std::max_element(l, l + E);
      float sum = 0;
      for (int e = 0; e < E; ++e) sum += s[e] = std::exp(l[e] - m);
      for (int e = 0; e < E; ++e) s[e] /= sum;
    }
    for (int e = 0; e < E; ++e) ch[e] = s[e] + (bias ? bias->w[e] : 0.0f);
    if (grouped) {
      for (int g = 0; g < G; ++g) {
        const float* cg = ch + g * per;
        if (c_.method == DeepSeekRouterConfig::Method::noaux_tc) {
          float a = -INFINITY, b = -INFINITY;  // the two largest
          for (int j = 0; j < per; ++j)
            if (cg[j] > a) b = a, a = cg[j];
            else if (cg[j] > b) b = cg[j];
          gs[g] = a + b;
        } else {
          gs[g] = *std::max_element(cg, cg + per);
        }
      }
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return gs[a] > gs[b]; });
      for (int r = c_.topk_group; r < G; ++r)
        for (int j = 0; j < per; ++j) ch[order[r] * per + j] = 0.0f;
    }
  }
  }
  val_.resize(n * k);
  kernels::topk_rows(plan.expert.data(), val_.data(), choice_.data(), n, E, k);
  RouterStats& st = plan.stats;
  st.dropped = 0;
  std::vector<double> sums(E + 1, 0.0);  // [E] sums of the normalised scores, entropy
  const bool renorm = k > 1 && c_.norm_topk_prob;
  const float r = c_.routed_scaling_factor;
  weigh_chosen_scores(plan, scores_.data(), n, k, E, [&](float sum) {
    return renorm ? (c_.scale_normalized ? r : 1.0f) / (sum + 1e-20f) : r;
  }, sums);
  const int64_t N = reduce_over_group(st, sums, k);  // loads and sums over the ranks
  n_global_ = N;
  st.batch_tokens = N;
  frac_.assign(E, 0.0);
  double aux = 0;
  for (int e = 0; e < E; ++e) {
    frac_[e] = N ? double(st.tokens_per_expert[e]) / double(N * k) : 0.0;
    aux += frac_[e] * (N ? sums[e] / double(N) : 0.0);
  }
  st.aux_loss = E * aux;
  st.seq_aux_loss = 0;
  st.z_loss = 0;
  st.entropy = N ? sums[E] / double(N) : 0.0;
  if (training_ && bias) load_ = st.tokens_per_expert;
}

double DeepSeekRouter::aux_objective() const { return plan_ ? c_.aux_coef * plan_->stats.aux_loss : 0.0; }

void DeepSeekRouter::backward(float* dx, const float* dweight) {
  const int E = c_.n_expert, k = c_.k;
  const int64_t n = n_;
  dlogits_.resize({n, E});
  float* dl = dlogits_.data();
  const float aux_scale = n_global_ ? float(c_.aux_coef * E / double(n_global_)) : 0.0f;
  const bool renorm = k > 1 && c_.norm_topk_prob;
  const float r = renorm && !c_.scale_normalized ? 1.0f : c_.routed_scaling_factor;
#pragma omp parallel for schedule(static) if (n > 64)
  for (int64_t t = 0; t < n; ++t) {
    const float* s = scores_.data() + t * E;
    float* ds = dl + t * E;  // dL/ds, then dL/dlogit in place
    const int32_t* ex = plan_->expert.data() + t * k;
    const float* dw = dweight + t * k;
    for (int e = 0; e < E; ++e) ds[e] = 0;
    float S = 1e-20f, dot = 0;
    for (int j = 0; j < k; ++j) S += s[ex[j]], dot += dw[j] * s[ex[j]];
    for (int j = 0; j < k; ++j) ds[ex[j]] += renorm ? r * (dw[j] / S - dot / (S * S)) : r * dw[j];
    if (aux_scale != 0) {  // aux = E sum_i f_i mean_t q_ti, q = s / sum(s): ds = (dq - <dq, q>) / sum(s)
      float all = 0, qdot = 0;
      for (int e = 0; e < E; ++e) all += s[e];
      for (int e = 0; e < E; ++e) qdot += aux_scale * float(frac_[e]) * s[e] / all;
      for (int e = 0; e < E; ++e) ds[e] += (aux_scale * float(frac_[e]) - qdot) / all;
    }
    if (c_.sigmoid) {
      for (int e = 0; e < E; ++e) ds[e] *= s[e] * (1.0f - s[e]);
    } else {
      float dot_s = 0;
      for (int e = 0; e < E; ++e) dot_s += ds[e] * s[e];
      for (int e = 0; e < E; ++e) ds[e] = s[e] * (ds[e] - dot_s);
    }
  }
  gate_backward(dx, gate, dl, x_, n);
}

void DeepSeekRouter::after_step() {
  if (bias) update_balance_bias(*bias, load_, c_.bias_update_speed);
}

}  // namespace moe
