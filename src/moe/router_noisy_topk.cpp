#include "moe/router_noisy_topk.h"

#include <algorithm>
#include <cmath>

#include "kernels/gemm.h"
#include "kernels/topk.h"

namespace moe {

namespace {
constexpr float kMinStd = 1e-2f;  // keeps the load estimator finite when softplus underflows
double normal_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }
double normal_pdf(double z) { return std::exp(-0.5 * z * z) / std::sqrt(2.0 * M_PI); }
float softplus(float a) { return a > 20 ? a : std::log1p(std::exp(a)); }

// CV^2 = var / mean^2 and its gradient with respect to each entry.
double cv_squared(const std::vector<double>& v, std::vector<double>* grad) {
  const double E = double(v.size());
  double m = 0;
  for (double x : v) m += x;
  m /= E;
  double var = 0;
  for (double x : v) var += (x - m) * (x - m);
  var /= E;
  const double m2 = m * m + 1e-10;
  if (grad) {
    grad->resize(v.size());
    for (size_t i = 0; i < v.size(); ++i)
      (*grad)[i] = 2.0 * (v[i] - m) / E / m2 - 2.0 * var * m / (m2 * m2) / E;
  }
  return var / m2;
}
}  // namespace

NoisyTopKRouter::NoisyTopKRouter(const std::string& name, const NoisyTopKRouterConfig& c)
    : gate(name, {c.n_expert, c.d_model}),
      noise(name.substr(0, name.rfind(".weight")) + "_noise.weight", {c.n_expert, c.d_model}),
      c_(c) {
  if (c.k < 1 || c.k >= c.n_expert)
    throw Error("[router] noisy_topk: k = " + std::to_string(c.k) + " must be in [1, " + std::to_string(c.n_expert - 1) +
                "] (the load estimator needs the (k+1)-th expert)");
}

void NoisyTopKRouter::forward(RoutingPlan& plan, const float* x, int64_t n) {
  const int E = c_.n_expert, k = c_.k;
  x_ = x;
  n_ = n;
  plan_ = &plan;
  if (group_.size() > 1)
    throw Error("[router] noisy_topk does not run data-parallel yet (its noise and its importance and load losses are "
                "per batch); use topk_softmax, switch, sigmoid_bias or expert_choice under mpirun");
  noisy_ = training_;
  for (Tensor* t : {&clean_, &raw_, &stdv_, &eps_, &h_}) t->resize({n, E});
  kernels::linear_forward(clean_.data(), x, gate.w.data(), n, c_.d_model, E);
  kernels::linear_forward(raw_.data(), x, noise.w.data(), n, c_.d_model, E);
  Rng rng(mix_seed(c_.seed, noise_step_));
  for (int64_t i = 0; i < n * E; ++i) {
    stdv_[i] = softplus(raw_[i]) + kMinStd;
    eps_[i] = noisy_ ? float(rng.normal()) : 0.0f;
    h_[i] = clean_[i] + eps_[i] * stdv_[i];
  }
  order_.resize(n * (k + 1));
  topv_.resize(n * (k + 1));
  kernels::topk_rows(order_.data(), topv_.data(), h_.data(), n, E, k + 1);
  prepare_plan(plan, n, k, E);
  RouterStats& st = plan.stats;
  st.tokens_per_expert.assign(E, 0);
  st.dropped = 0;
  importance_.assign(E, 0.0);
  load_.assign(E, 0.0);
  double ent = 0;
  for (int64_t t = 0; t < n; ++t) {
    const float* v = topv_.data() + t * (k + 1);
    float s = 0;
    for (int j = 0; j < k; ++j) s += std::exp(v[j] - v[0]);
    for (int j = 0; j < k; ++j) {
      const int32_t e = order_[t * (k + 1) + j];
      const float w = std::exp(v[j] - v[0]) / s;
      plan.expert[t * k + j] = e;
      plan.weight[t * k + j] = w;
      st.tokens_per_expert[e]++;
      importance_[e] += w;
      if (w > 0) ent -= double(w) * std::log(double(w));
    }
    if (noisy_) {
      for (int e = 0; e < E; ++e) {
        const float hv = h_[t * E + e];
        const float thr = hv >= v[k - 1] && hv > v[k] ? v[k] : v[k - 1];  // kth excluding e
        load_[e] += normal_cdf((double(clean_[t * E + e]) - thr) / stdv_[t * E + e]);
      }
    }
  }
  if (!noisy_)
    for (int e = 0; e < E; ++e) load_[e] = double(st.tokens_per_expert[e]);
  importance_loss_ = cv_squared(importance_, nullptr);
  load_loss_ = cv_squared(load_, nullptr);
  st.aux_loss = importance_loss_ + load_loss_;
  st.z_loss = 0;
  st.entropy = n ? ent / double(n) : 0.0;
}

double NoisyTopKRouter::aux_objective() const {
  return plan_ ? c_.importance_coef * importance_loss_ + c_.load_coef * load_loss_ : 0.0;
}

void NoisyTopKRouter::backward(float* dx, const float* dweight) {
  const int E = c_.n_expert, k = c_.k;
  const int64_t n = n_;
  std::vector<double> dimp, dload;
  cv_squared(importance_, &dimp);
  cv_squared(load_, &dload);
  for (auto& g : dimp) g *= c_.importance_coef;
  for (auto& g : dload) g *= noisy_ ? c_.load_coef : 0.0;  // without noise the load is a count
  dclean_.resize({n, E});
  draw_.resize({n, E});
  dclean_.zero();
  draw_.zero();
#pragma omp parallel
  {
    std::vector<float> dh(E), w(k), dw(k);  // per-thread scratch
#pragma omp for schedule(static)
    for (int64_t t = 0; t < n; ++t) {
      const int32_t* ord = order_.data() + t * (k + 1);
      const float* v = topv_.data() + t * (k + 1);
      float* dc = dclean_.data() + t * E;
      float* dr = draw_.data() + t * E;
      std::fill(dh.begin(), dh.end(), 0.0f);
      // Weights: softmax over the kept H; their gradient is the task's plus the importance loss's.
      float s = 0;
      for (int j = 0; j < k; ++j) s += std::exp(v[j] - v[0]);
      float dot = 0;
      for (int j = 0; j < k; ++j) {
        w[j] = std::exp(v[j] - v[0]) / s;
        dw[j] = dweight[t * k + j] + float(dimp[ord[j]]);
        dot += dw[j] * w[j];
      }
      for (int j = 0; j < k; ++j) dh[ord[j]] += w[j] * (dw[j] - dot);
      // Load: P = Phi((clean - thr) / std), thr the k-th largest H excluding e.
      if (noisy_) {
        for (int e = 0; e < E; ++e) {
          const float hv = h_[t * E + e], sd = stdv_[t * E + e];
          const bool in = hv >= v[k - 1] && hv > v[k];
          const float thr = in ? v[k] : v[k - 1];
          const int32_t thr_idx = in ? ord[k] : ord[k - 1];
          const double z = (double(clean_[t * E + e]) - thr) / sd;
          const float dz = float(dload[e] * normal_pdf(z));
          dc[e] += dz / sd;
          const float dsd = -dz * float(z) / sd;
          dr[e] += dsd / (1.0f + std::exp(-raw_[t * E + e]));  // softplus' = sigmoid
          dh[thr_idx] -= dz / sd;
        }
      }
      // H = clean + eps * std
      for (int e = 0; e < E; ++e) {
        dc[e] += dh[e];
        dr[e] += dh[e] * eps_[t * E + e] / (1.0f + std::exp(-raw_[t * E + e]));
      }
    }
  }
  gate_backward(dx, gate, dclean_.data(), x_, n);
  gate_backward(dx, noise, draw_.data(), x_, n);
}

}  // namespace moe
