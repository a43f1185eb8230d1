#include "moe/router_peer.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "kernels/gemm.h"
#include "nn/init.h"

namespace moe {

namespace {
constexpr int64_t kChunk = 256;  // tokens scored per GEMM: bounds the [chunk, sqrt(N)] scratch
constexpr int64_t kBnCols = 16;  // query columns per batch-norm task: one cache line of a row
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
    if (bn_weight.w.has_storage())  // not when a loader fills them (DeferredWeights)
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
// Each thread takes blocks of kBnCols adjacent columns and walks the rows: whole cache lines per row,
// where one column at a time would touch a line per token (3x slower at n = 2048, h*dk = 1024).
// Every column is still summed in token order by one thread (deterministic).
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
  for (int64_t c0 = 0; c0 < H; c0 += kBnCols) {
    const int64_t nc = std::min(kBnCols, H - c0);
    double mu[kBnCols], var[kBnCols];
    float muf[kBnCols], is[kBnCols];
    if (batch_stats_) {
      double s[kBnCols] = {}, s2[kBnCols] = {};
      for (int64_t t = 0; t < n; ++t)
        for (int64_t j = 0; j < nc; ++j) s[j] += qraw_[t * H + c0 + j];
      for (int64_t j = 0; j < nc; ++j) mu[j] = s[j] / double(n);
      for (int64_t t = 0; t < n; ++t)
        for (int64_t j = 0; j < nc; ++j) {
          const double e = qraw_[t * H + c0 + j] - mu[j];
          s2[j] += e * e;
        }
      const float m = c_.bn_momentum;
      for (int64_t j = 0; j < nc; ++j) {
        var[j] = s2[j] / double(n);
        bn_mean.w[c0 + j] = (1 - m) * bn_mean.w[c0 + j] + m * float(mu[j]);
        bn_var.w[c0 + j] = (1 - m) * bn_var.w[c0 + j] + m * float(s2[j] / double(n - 1));
      }
    } else {
      for (int64_t j = 0; j < nc; ++j) mu[j] = bn_mean.w[c0 + j], var[j] = bn_var.w[c0 + j];
    }
    for (int64_t j = 0; j < nc; ++j) {
      muf[j] = float(mu[j]);
      is[j] = inv_std_[c0 + j] = float(1.0 / std::sqrt(var[j] + c_.bn_eps));
    }
    for (int64_t t = 0; t < n; ++t)
      for (int64_t j = 0; j < nc; ++j) {
        const int64_t i = t * H + c0 + j;
        const float xh = (qraw_[i] - muf[j]) * is[j];
        xhat_[i] = xh;
        q_[i] = bn_weight.w[c0 + j] * xh + bn_bias.w[c0 + j];
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

// dqraw = gamma/sigma * (dq - mean(dq) - xhat * mean(dq * xhat)) with batch statistics, gamma/sigma *
// dq with running ones; column blocks as in normalize_query.
void PEERRouter::normalize_query_backward(float* dqraw, int64_t n) {
  const int64_t H = q_.dim(1);
#pragma omp parallel for schedule(static)
  for (int64_t c0 = 0; c0 < H; c0 += kBnCols) {
    const int64_t nc = std::min(kBnCols, H - c0);
    double sdq[kBnCols] = {}, sdqx[kBnCols] = {};
    for (int64_t t = 0; t < n; ++t)
      for (int64_t j = 0; j < nc; ++j) {
        const int64_t i = t * H + c0 + j;
        sdq[j] += dq_[i];
        sdqx[j] += double(dq_[i]) * xhat_[i];
      }
    float gi[kBnCols], mdq[kBnCols], mdqx[kBnCols];
    for (int64_t j = 0; j < nc; ++j) {
      bn_bias.g[c0 + j] += float(sdq[j]);
      bn_weight.g[c0 + j] += float(sdqx[j]);
      gi[j] = bn_weight.w[c0 + j] * inv_std_[c0 + j];
      mdq[j] = float(sdq[j] / double(n));
      mdqx[j] = float(sdqx[j] / double(n));
    }
    for (int64_t t = 0; t < n; ++t)
      for (int64_t j = 0; j < nc; ++j) {
        const int64_t i = t * H + c0 + j;
        dqraw[i] = batch_stats_ ? gi[j] * (dq_[i] - mdq[j] - xhat_[i] * mdqx[j]) : gi[j] * dq_[i];
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
