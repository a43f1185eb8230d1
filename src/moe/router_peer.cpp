#include "moe/router_peer.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "kernels/gemm.h"
#include "nn/init.h"

namespace moe {

namespace {
constexpr int64_t kChunk = 256;  // tokens scored per GEMM: bounds the [chunk, sqrt(N)] scratch
}

PEERRouter::PEERRouter(const std::string& p, const PEERConfig& cfg)
    : query(p + ".query.weight", Shape{int64_t(cfg.heads) * cfg.key_dim, cfg.d_model}),
      // No weight decay on the sub-keys: it would shrink every key a step did not retrieve, and so
      // entrench the ones that are retrieved.
      sub_keys(p + ".sub_keys", Shape{2, cfg.heads, cfg.n_sub(), cfg.key_dim / 2}, /*wd=*/false),
      c_(cfg) {
  cfg.validate("[peer] ");
  sub_keys.lr_scale = c_.key_lr_scale;
  if (c_.batch_norm) {
    const int64_t H = int64_t(c_.heads) * c_.key_dim;
    bn_weight = Param(p + ".query_norm.weight", Shape{H}, false);
    bn_bias = Param(p + ".query_norm.bias", Shape{H}, false);
    bn_mean = Param(p + ".query_norm.running_mean", Shape{H}, false);
    bn_var = Param(p + ".query_norm.running_var", Shape{H}, false);
    bn_mean.trainable = bn_var.trainable = false;
    for (int64_t i = 0; i < H; ++i) bn_weight.w[i] = 1.0f, bn_var.w[i] = 1.0f;
  }
}

void PEERRouter::params(ParamList& out) {
  out.push_back(&query);
  out.push_back(&sub_keys);
  if (c_.batch_norm) {
    out.push_back(&bn_weight);
    out.push_back(&bn_bias);
    out.push_back(&bn_mean);
    out.push_back(&bn_var);
  }
}

void PEERRouter::init_sub_keys(Rng& rng) {
  init_uniform(sub_keys, rng, float(1.0 / std::sqrt(double(c_.key_dim / 2))));
}

void PEERRouter::reset_running_stats() {
  if (!c_.batch_norm) return;
  bn_mean.w.zero();
  for (int64_t i = 0; i < bn_var.w.numel(); ++i) bn_var.w[i] = 1.0f;
}

// q = gamma * (qraw - mu) / sqrt(var + eps) + beta, with the batch's statistics in training (and the
// running ones updated as PyTorch does: unbiased variance, momentum) and the running ones otherwise.
void PEERRouter::normalize_query(int64_t n) {
  const int64_t H = qraw_.dim(1);
  q_.resize({n, H});
  if (!c_.batch_norm) {
    std::copy(qraw_.data(), qraw_.data() + n * H, q_.data());
    return;
  }
  xhat_.resize({n, H});
  inv_std_.resize({H});
  batch_stats_ = training_ && n > 1;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < H; ++c) {
    double mu, var;
    if (batch_stats_) {
      double s = 0, s2 = 0;
      for (int64_t t = 0; t < n; ++t) s += qraw_[t * H + c];
      mu = s / double(n);
      for (int64_t t = 0; t < n; ++t) {
        const double e = qraw_[t * H + c] - mu;
        s2 += e * e;
      }
      var = s2 / double(n);
      const float m = c_.bn_momentum;
      bn_mean.w[c] = (1 - m) * bn_mean.w[c] + m * float(mu);
      bn_var.w[c] = (1 - m) * bn_var.w[c] + m * float(s2 / double(n - 1));
    } else {
      mu = bn_mean.w[c];
      var = bn_var.w[c];
    }
    const float is = float(1.0 / std::sqrt(var + c_.bn_eps));
    inv_std_[c] = is;
    for (int64_t t = 0; t < n; ++t) {
      const float xh = (qraw_[t * H + c] - float(mu)) * is;
      xhat_[t * H + c] = xh;
      q_[t * H + c] = bn_weight.w[c] * xh + bn_bias.w[c];
    }
  }
}

void PEERRouter::forward(RoutingPlan& plan, const float* x, int64_t n) {
  const int h = c_.heads, k = c_.top_k, dk = c_.key_dim, half = dk / 2, S = c_.slots();
  const int64_t ns = c_.n_sub(), H = int64_t(h) * dk;
  x_ = x;
  n_ = n;
  plan_ = &plan;
  prepare_plan(plan, n, S, int(c_.n_experts));
  plan.stats = RouterStats{};  // tokens_per_expert stays empty: N counters per step would cost O(N)
  qraw_.resize({n, H});
  kernels::linear_forward(qraw_.data(), x, query.w.data(), n, c_.d_model, H);
  normalize_query(n);

  const int nt = omp_get_max_threads();
  sub_scores_.resize(nt);
  scratch_.resize(nt);
  const int64_t n_chunks = (n + kChunk - 1) / kChunk, tasks = n_chunks * h;
  const float* K = sub_keys.w.data();
#pragma omp parallel
  {
    const int tid = omp_get_thread_num();
    Tensor& sc = sub_scores_[tid];
    sc.resize({2, kChunk, ns});
    // One (chunk of tokens, head) per task; the GEMMs run single-threaded inside the parallel region.
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      const int head = int(task % h);
      const int64_t t0 = (task / h) * kChunk, nb = std::min(kChunk, n - t0);
      const float* K1 = K + int64_t(head) * ns * half;      // first half's sub-keys of this head
      const float* K2 = K + int64_t(h + head) * ns * half;  // second half's
      const int64_t slot0 = t0 * S + int64_t(head) * k;
      kernels::product_key_search(plan.expert.data() + slot0, plan.weight.data() + slot0, S,
                                  q_.data() + t0 * H + int64_t(head) * dk, H, K1, K2, nb, ns, half, k, sc.data(),
                                  scratch_[tid]);
      for (int64_t t = 0; t < nb; ++t) {
        float* w = plan.weight.data() + slot0 + t * S;
        if (c_.sigmoid_scores) {
          for (int i = 0; i < k; ++i) w[i] = 1.0f / (1.0f + std::exp(-w[i]));
        } else {  // scores are sorted: w[0] is the max
          float sum = 0;
          const float mx = w[0];
          for (int i = 0; i < k; ++i) sum += (w[i] = std::exp(w[i] - mx));
          for (int i = 0; i < k; ++i) w[i] /= sum;
        }
      }
    }
  }
}

void PEERRouter::normalize_query_backward(float* dqraw, int64_t n) {
  const int64_t H = q_.dim(1);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < H; ++c) {
    double sdq = 0, sdqx = 0;
    for (int64_t t = 0; t < n; ++t) {
      sdq += dq_[t * H + c];
      sdqx += double(dq_[t * H + c]) * xhat_[t * H + c];
    }
    bn_bias.g[c] += float(sdq);
    bn_weight.g[c] += float(sdqx);
    const float gi = bn_weight.w[c] * inv_std_[c];
    if (batch_stats_) {  // dqraw = gamma/sigma * (dq - mean(dq) - xhat * mean(dq * xhat))
      const float mdq = float(sdq / double(n)), mdqx = float(sdqx / double(n));
      for (int64_t t = 0; t < n; ++t) dqraw[t * H + c] = gi * (dq_[t * H + c] - mdq - xhat_[t * H + c] * mdqx);
    } else {
      for (int64_t t = 0; t < n; ++t) dqraw[t * H + c] = gi * dq_[t * H + c];
    }
  }
}

void PEERRouter::backward(float* dx, const float* dweight) {
  const RoutingPlan& plan = *plan_;
  const int h = c_.heads, k = c_.top_k, dk = c_.key_dim, half = dk / 2, S = c_.slots();
  const int64_t n = n_, ns = c_.n_sub(), H = int64_t(h) * dk;
  ds_.resize({n, S});
  // Score gradients through softmax (per head) or sigmoid.
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n; ++t)
    for (int head = 0; head < h; ++head) {
      const int64_t o = t * S + int64_t(head) * k;
      const float* g = plan.weight.data() + o;
      const float* dg = dweight + o;
      float* ds = ds_.data() + o;
      if (c_.sigmoid_scores) {
        for (int i = 0; i < k; ++i) ds[i] = dg[i] * g[i] * (1.0f - g[i]);
      } else {
        float dot = 0;
        for (int i = 0; i < k; ++i) dot += g[i] * dg[i];
        for (int i = 0; i < k; ++i) ds[i] = g[i] * (dg[i] - dot);
      }
    }
  // score = q1 . K1[i] + q2 . K2[j]: dq per token in parallel over tokens ...
  const float* K = sub_keys.w.data();
  dq_.resize({n, H});
  dq_.zero();
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n; ++t)
    for (int slot = 0; slot < S; ++slot) {
      const int head = slot / k;
      const int64_t id = plan.expert[t * S + slot], ij[2] = {id / ns, id % ns};
      const float d = ds_[t * S + slot];
      for (int s = 0; s < 2; ++s) {
        float* dq = dq_.data() + t * H + int64_t(head) * dk + s * half;
        const float* key = K + ((int64_t(s) * h + head) * ns + ij[s]) * half;
        for (int c = 0; c < half; ++c) dq[c] += d * key[c];
      }
    }
  // ... and the sub-key gradients in parallel over (half, head), each summed in token order by one
  // thread: deterministic and free of atomics.
  float* dK = sub_keys.g.data();
#pragma omp parallel for schedule(dynamic, 1)
  for (int task = 0; task < 2 * h; ++task) {
    const int s = task / h, head = task % h;
    for (int64_t t = 0; t < n; ++t)
      for (int i = 0; i < k; ++i) {
        const int64_t slot = t * S + int64_t(head) * k + i, id = plan.expert[slot];
        const int64_t row = s == 0 ? id / ns : id % ns;
        float* dkey = dK + ((int64_t(s) * h + head) * ns + row) * half;
        const float* q = q_.data() + t * H + int64_t(head) * dk + s * half;
        const float d = ds_[slot];
        for (int c = 0; c < half; ++c) dkey[c] += d * q[c];
      }
  }
  const float* dqraw = dq_.data();
  if (c_.batch_norm) {
    normalize_query_backward(qraw_.data(), n);  // the forward's qraw_ is no longer needed: holds dqraw
    dqraw = qraw_.data();
  }
  kernels::linear_backward_input(dx, dqraw, query.w.data(), n, c_.d_model, H, /*accumulate=*/true);
  kernels::linear_backward_weight(query.g.data(), dqraw, x_, n, c_.d_model, H);
}

}  // namespace moe
