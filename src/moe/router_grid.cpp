#include "moe/router_grid.h"

#include <algorithm>
#include <cmath>

#include "kernels/gemm.h"

namespace moe {

GridRouter::GridRouter(const std::string& name, const GridRouterConfig& c) : c_(c) {
  c_.grid.check(c_.grid.size(), "[router] grid");
  D_ = int(c_.grid.dims.size());
  for (int g : c_.grid.dims) off_.push_back(S_), S_ += g;
  if (c_.grid.size() > INT32_MAX) throw Error("[router] grid: more than 2^31 experts");
  E_ = int(c_.grid.size());
  if (c.k < 1 || c.k > E_)
    throw Error("[router] grid: k = " + std::to_string(c.k) + " must be in [1, " + std::to_string(E_) + "]");
  B_ = c.beam_size > 0 ? c.beam_size : c.k;
  if (c.beam_size < 0) throw Error("[router] grid: beam_size must be >= 0 (0: k)");
  gate = Param(name, {S_, c.d_model});
  kids_.resize(D_);
}

const std::vector<int>& GridRouter::children(int d, int64_t p) {
  auto it = kids_[d].find(p);
  if (it != kids_[d].end()) return it->second;
  std::vector<int> out;
  const int G = c_.grid.dims[d];
  if (live_) {
    std::vector<int> prefix(d);
    int64_t q = p;
    for (int i = d; i-- > 0;) prefix[i] = int(q % c_.grid.dims[i]), q /= c_.grid.dims[i];
    ++asked_;
    for (int c : live_->live_children(prefix))
      if (c >= 0 && c < G) out.push_back(c);
  } else if (available_ && d == D_ - 1) {
    for (int c = 0; c < G; ++c)
      if ((*available_)[p * G + c]) out.push_back(c);
  } else {
    for (int c = 0; c < G; ++c) out.push_back(c);
  }
  return kids_[d].emplace(p, std::move(out)).first->second;
}

void GridRouter::forward(RoutingPlan& plan, const float* x, int64_t n) {
  const int k = c_.k;
  x_ = x;
  n_ = n;
  plan_ = &plan;
  prepare_plan(plan, n, k, E_);
  scores_.resize({n, S_});
  probs_.resize({n, S_});
  kernels::linear_forward(scores_.data(), x, gate.w.data(), n, c_.d_model, S_);
  for (auto& m : kids_) m.clear();
  asked_ = 0;

  struct Cand {
    int64_t p;  // row-major partial index
    float s;
  };
  auto better = [](const Cand& a, const Cand& b) { return a.s > b.s || (a.s == b.s && a.p < b.p); };
  std::vector<Cand> beam, next;
  // [S]: chosen slots per coordinate, sum of softmax per coordinate; then entropy, tokens.
  std::vector<double> rec(2 * size_t(S_) + 2, 0.0);
  std::vector<int64_t> load(E_, 0);
  for (int64_t t = 0; t < n; ++t) {
    const float* s = scores_.data() + t * S_;
    beam.assign(1, Cand{0, 0.0f});
    for (int d = 0; d < D_; ++d) {
      next.clear();
      for (const Cand& b : beam)
        for (int c : children(d, b.p)) next.push_back(Cand{b.p * c_.grid.dims[d] + c, b.s + s[off_[d] + c]});
      const size_t keep = std::min(next.size(), size_t(d == D_ - 1 ? k : B_));
      std::partial_sort(next.begin(), next.begin() + keep, next.end(), better);
      next.resize(keep);
      std::swap(beam, next);
    }
    // Softmax over the chosen experts' scores; missing slots (fewer than k live) get -1, weight 0.
    int32_t* e = plan.expert.data() + t * k;
    float* w = plan.weight.data() + t * k;
    const int m = int(beam.size());
    float mx = m ? beam[0].s : 0.0f, z = 0;
    for (int j = 0; j < m; ++j) z += std::exp(beam[j].s - mx);
    for (int j = 0; j < k; ++j) {
      e[j] = j < m ? int32_t(beam[j].p) : -1;
      w[j] = j < m ? std::exp(beam[j].s - mx) / z : 0.0f;
      if (j < m) {
        ++load[beam[j].p];
        int64_t q = beam[j].p;
        for (int d = D_; d-- > 0;) rec[off_[d] + q % c_.grid.dims[d]] += 1, q /= c_.grid.dims[d];
      }
    }
    // Each dimension's softmax, for the balancing loss and the entropy.
    float* p = probs_.data() + t * S_;
    for (int d = 0; d < D_; ++d) {
      const int G = c_.grid.dims[d];
      const float* sd = s + off_[d];
      float* pd = p + off_[d];
      const float mxd = *std::max_element(sd, sd + G);
      double zd = 0;
      for (int i = 0; i < G; ++i) zd += pd[i] = std::exp(sd[i] - mxd);
      for (int i = 0; i < G; ++i) {
        pd[i] = float(pd[i] / zd);
        rec[S_ + off_[d] + i] += pd[i];
        if (pd[i] > 0) rec[2 * S_] -= double(pd[i]) * std::log(double(pd[i]));
      }
    }
  }
  rec[2 * S_ + 1] = double(n);
  // Statistics and balancing over the whole batch of the data group (fixed-order sums).
  if (group_.size() > 1) {
    group_.all_reduce_sum(rec);
    group_.all_reduce_sum(load);
  }
  const double N = rec[2 * S_ + 1];
  n_global_ = int64_t(N);
  f_.assign(S_, 0.0);
  double aux = 0;
  for (int d = 0; d < D_; ++d)
    for (int i = 0; i < c_.grid.dims[d]; ++i) {
      const int r = off_[d] + i;
      f_[r] = N > 0 ? rec[r] / (N * k) : 0.0;
      aux += c_.grid.dims[d] * f_[r] * (N > 0 ? rec[S_ + r] / N : 0.0) / D_;
    }
  RouterStats& st = plan.stats;
  st = RouterStats{};
  st.tokens_per_expert = load;
  st.batch_tokens = n_global_;
  st.aux_loss = aux;
  st.entropy = N > 0 ? rec[2 * S_] / N : 0.0;
}

double GridRouter::aux_objective() const { return plan_ ? c_.aux_coef * plan_->stats.aux_loss : 0.0; }

void GridRouter::backward(float* dx, const float* dweight) {
  const int k = c_.k;
  const int64_t n = n_;
  dl_.resize({n, S_});
  float* dl = dl_.data();
  std::fill(dl, dl + n * S_, 0.0f);
  const double N = double(n_global_);
  const RoutingPlan& plan = *plan_;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n; ++t) {
    float* g = dl + t * S_;
    // w = softmax(chosen scores): ds_j = w_j (dw_j - sum_l w_l dw_l); an expert's score is the sum
    // of its coordinates' scores, so each coordinate gets its experts' ds.
    const int32_t* e = plan.expert.data() + t * k;
    const float* w = plan.weight.data() + t * k;
    const float* dw = dweight + t * k;
    float dot = 0;
    for (int j = 0; j < k; ++j)
      if (e[j] >= 0) dot += w[j] * dw[j];
    for (int j = 0; j < k; ++j) {
      if (e[j] < 0) continue;
      const float ds = w[j] * (dw[j] - dot);
      int64_t q = e[j];
      for (int d = D_; d-- > 0;) g[off_[d] + q % c_.grid.dims[d]] += ds, q /= c_.grid.dims[d];
    }
    // Balancing: d/ds_d of (coef / D) G_d sum_i f_i mean_t p_{t,i}, through each dimension's softmax.
    if (c_.aux_coef != 0 && N > 0)
      for (int d = 0; d < D_; ++d) {
        const int G = c_.grid.dims[d];
        const float* p = probs_.data() + t * S_ + off_[d];
        const double scale = c_.aux_coef * G / (D_ * N);
        double dot_p = 0;
        for (int i = 0; i < G; ++i) dot_p += p[i] * f_[off_[d] + i];
        for (int i = 0; i < G; ++i) g[off_[d] + i] += float(scale * p[i] * (f_[off_[d] + i] - dot_p));
      }
  }
  gate_backward(dx, gate, dl, x_, n);
}

}  // namespace moe
