#include "moe/expert_bank_peer.h"

#include <cmath>
#include <cstring>

namespace moe {

namespace {

inline float act(float z, bool relu) {
  if (relu) return z > 0.0f ? z : 0.0f;
  return 0.5f * z * (1.0f + std::erf(z * float(M_SQRT1_2)));
}
inline float act_grad(float z, bool relu) {
  if (relu) return z > 0.0f ? 1.0f : 0.0f;
  const float cdf = 0.5f * (1.0f + std::erf(z * float(M_SQRT1_2)));
  const float pdf = float(0.5 * M_2_SQRTPI * M_SQRT1_2) * std::exp(-0.5f * z * z);
  return cdf + z * pdf;
}
inline float dot(const float* a, const float* b, int d) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < d; ++i) s += a[i] * b[i];
  return s;
}
inline void axpy(float* y, float a, const float* x, int d) {
#pragma omp simd
  for (int i = 0; i < d; ++i) y[i] += a * x[i];
}
// The tables are far larger than the caches and a token's experts are scattered over them: each row
// is a DRAM miss. Asking for the next slot's rows while this slot computes overlaps those misses.
inline void prefetch_row(const float* row, int d) {
  for (int i = 0; i < d; i += 64 / int(sizeof(float))) __builtin_prefetch(row + i);
}

}  // namespace

PEERExpertBank::PEERExpertBank(const std::string& p, const PEERConfig& cfg)
    : down(p + ".experts.down.weight", Shape{cfg.n_experts, cfg.d_model}, false),
      up(p + ".experts.up.weight", Shape{cfg.n_experts, cfg.d_model}, false),
      c_(cfg) {
  cfg.validate("[peer] ");
  down.row_sparse = up.row_sparse = true;
  // Release the dense [N, d] gradients Param allocated: row-sparse ones grow with the rows touched.
  down.g = Tensor(Shape{0, cfg.d_model});
  up.g = Tensor(Shape{0, cfg.d_model});
}

void PEERExpertBank::params(ParamList& out) {
  out.push_back(&down);
  out.push_back(&up);
}

void PEERExpertBank::forward(float* y, const float* x, const RoutingPlan& plan) {
  const int d = c_.d_model, S = c_.slots();
  const int64_t n = plan.n_tok;
  x_ = x;
  plan_ = &plan;
  n_ = n;
  z_.resize({n, S});
  const float* U = down.w.data();
  const float* V = up.w.data();
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n; ++t) {
    float* yt = y + t * d;
    std::memset(yt, 0, sizeof(float) * d);
    for (int s = 0; s < S; ++s) {
      const int64_t e = plan.expert[t * S + s];
      if (s + 1 < S) {
        const int64_t next = plan.expert[t * S + s + 1];
        prefetch_row(U + next * d, d);
        prefetch_row(V + next * d, d);
      }
      const float z = z_[t * S + s] = dot(U + e * d, x + t * d, d);
      axpy(yt, plan.weight[t * S + s] * act(z, c_.relu), V + e * d, d);
    }
  }
}

void PEERExpertBank::backward(float* dx, float* dweight, const float* dy) {
  const RoutingPlan& plan = *plan_;
  const int d = c_.d_model, S = c_.slots();
  const int64_t n = n_;
  dz_.resize({n, S});
  wa_.resize({n, S});
  const float* U = down.w.data();
  const float* V = up.w.data();
  // Per slot: c = v_e . dy_t; dw = act(z) c; dz = w c act'(z); dx_t = sum dz u_e.
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n; ++t) {
    float* dxt = dx + t * d;
    std::memset(dxt, 0, sizeof(float) * d);
    for (int s = 0; s < S; ++s) {
      const int64_t o = t * S + s, e = plan.expert[o];
      if (s + 1 < S) {
        prefetch_row(U + plan.expert[o + 1] * d, d);
        prefetch_row(V + plan.expert[o + 1] * d, d);
      }
      const float z = z_[o], w = plan.weight[o], a = act(z, c_.relu);
      const float c = dot(V + e * d, dy + t * d, d);
      dweight[o] = a * c;
      wa_[o] = w * a;
      const float dz = dz_[o] = w * c * act_grad(z, c_.relu);
      axpy(dxt, dz, U + e * d, d);
    }
  }
  table_grads(dy);
}

// du_e = sum over the slots that retrieved e of dz x_t; dv_e = sum of w act(z) dy_t. The slots are
// grouped by expert with a stable counting sort (O(n h k + N)), so each row's sum runs in token
// order on one thread.
void PEERExpertBank::table_grads(const float* dy) {
  const RoutingPlan& plan = *plan_;
  const int d = c_.d_model;
  const int64_t N = c_.n_experts, M = n_ * c_.slots();
  count_.assign(N + 1, 0);
  for (int64_t o = 0; o < M; ++o) ++count_[plan.expert[o] + 1];
  rows_.clear();
  row_start_.clear();
  for (int64_t e = 0; e < N; ++e) {
    if (count_[e + 1] > 0) rows_.push_back(e), row_start_.push_back(count_[e]);
    count_[e + 1] += count_[e];
  }
  row_start_.push_back(int32_t(M));
  by_expert_.resize(M);
  for (int64_t o = 0; o < M; ++o) by_expert_[count_[plan.expert[o]]++] = int32_t(o);

  const int64_t R = int64_t(rows_.size());
  // Write straight into the gradients when they hold no rows yet (one backward per step).
  const bool direct = down.rows.empty() && up.rows.empty();
  Tensor& gd = direct ? down.g : gdown_;
  Tensor& gu = direct ? up.g : gup_;
  gd.resize({R, d});
  gu.resize({R, d});
  const int S = c_.slots();
#pragma omp parallel for schedule(dynamic, 64)
  for (int64_t r = 0; r < R; ++r) {
    float* du = gd.data() + r * d;
    float* dv = gu.data() + r * d;
    std::memset(du, 0, sizeof(float) * d);
    std::memset(dv, 0, sizeof(float) * d);
    for (int32_t p = row_start_[r]; p < row_start_[r + 1]; ++p) {
      const int64_t o = by_expert_[p], t = o / S;
      axpy(du, dz_[o], x_ + t * d, d);
      axpy(dv, wa_[o], dy + t * d, d);
    }
  }
  if (direct) {
    down.rows = rows_;
    up.rows = rows_;
  } else {
    down.add_row_grads(rows_, gd.data());
    up.add_row_grads(rows_, gu.data());
  }
}

}  // namespace moe
