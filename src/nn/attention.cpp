#include "nn/attention.h"

#include <cstring>

#include "kernels/attention.h"
#include "kernels/gemm.h"
#include "kernels/rope.h"

namespace moe {

Attention::Attention(const std::string& p, const AttentionConfig& c)
    : q_proj(p + ".q_proj.weight", {int64_t(c.n_heads) * c.head_dim, c.d_model}),
      k_proj(p + ".k_proj.weight", {int64_t(c.n_kv_heads) * c.head_dim, c.d_model}),
      v_proj(p + ".v_proj.weight", {int64_t(c.n_kv_heads) * c.head_dim, c.d_model}),
      o_proj(p + ".o_proj.weight", {c.d_model, int64_t(c.n_heads) * c.head_dim}),
      c_(c) {
  for (Param* w : {&q_proj, &k_proj, &v_proj, &o_proj}) w->may_stay_16bit = true;  // forward reads matrix()
  if (c.qkv_bias) {
    q_bias = std::make_unique<Param>(p + ".q_proj.bias", Shape{int64_t(c.n_heads) * c.head_dim}, false);
    k_bias = std::make_unique<Param>(p + ".k_proj.bias", Shape{int64_t(c.n_kv_heads) * c.head_dim}, false);
    v_bias = std::make_unique<Param>(p + ".v_proj.bias", Shape{int64_t(c.n_kv_heads) * c.head_dim}, false);
  }
  if (c.qk_norm != QKNorm::none) {
    const bool head = c.qk_norm == QKNorm::per_head;
    q_norm = std::make_unique<RMSNorm>(p + ".q_norm.weight", head ? c.head_dim : c.n_heads * c.head_dim, c.norm_eps);
    k_norm = std::make_unique<RMSNorm>(p + ".k_norm.weight", head ? c.head_dim : c.n_kv_heads * c.head_dim, c.norm_eps);
  }
}

void Attention::params(ParamList& out) {
  out.insert(out.end(), {&q_proj, &k_proj, &v_proj, &o_proj});
  if (q_bias) out.insert(out.end(), {q_bias.get(), k_bias.get(), v_bias.get()});
  if (q_norm) out.insert(out.end(), {&q_norm->weight, &k_norm->weight});
}

namespace {
void add_bias(float* y, const Param* b, int64_t n) {
  if (!b) return;
  const int64_t m = b->w.numel();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) y[i * m + j] += b->w[j];
}
void bias_grad(Param* b, const float* dy, int64_t n) {
  if (!b) return;
  const int64_t m = b->w.numel();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) b->g[j] += dy[i * m + j];
}
}  // namespace

// q, k, v before rotary: x W^T (+ bias).
void Attention::project_qkv(float* q, float* k, float* v, const float* x, int64_t n) const {
  const int64_t d = c_.d_model, D = c_.head_dim, qd = int64_t(c_.n_heads) * D, kvd = int64_t(c_.n_kv_heads) * D;
  kernels::linear_forward(q, x, q_proj.matrix(), n, d, qd);
  kernels::linear_forward(k, x, k_proj.matrix(), n, d, kvd);
  kernels::linear_forward(v, x, v_proj.matrix(), n, d, kvd);
  add_bias(q, q_bias.get(), n);
  add_bias(k, k_bias.get(), n);
  add_bias(v, v_bias.get(), n);
}

void Attention::forward(float* y, const float* x, int64_t B, int64_t T) {
  const int64_t n = B * T, d = c_.d_model, D = c_.head_dim;
  const int64_t qd = int64_t(c_.n_heads) * D, kvd = int64_t(c_.n_kv_heads) * D;
  B_ = B;
  T_ = T;
  x_ = x;
  q_.resize({n, qd});
  k_.resize({n, kvd});
  v_.resize({n, kvd});
  att_.resize({n, qd});
  probs_.resize({B, c_.n_heads, T, T});
  positions_.resize(n);
  for (int64_t i = 0; i < n; ++i) positions_[i] = int32_t(i % T);
  if (q_norm) {
    q_raw_.resize({n, qd});
    k_raw_.resize({n, kvd});
    project_qkv(q_raw_.data(), k_raw_.data(), v_.data(), x, n);
    q_norm->forward(q_.data(), q_raw_.data(), norm_rows(n, c_.n_heads));
    k_norm->forward(k_.data(), k_raw_.data(), norm_rows(n, c_.n_kv_heads));
  } else {
    project_qkv(q_.data(), k_.data(), v_.data(), x, n);
  }
  kernels::rope_forward(q_.data(), positions_.data(), n, c_.n_heads, D, c_.rope_theta);
  kernels::rope_forward(k_.data(), positions_.data(), n, c_.n_kv_heads, D, c_.rope_theta);
  kernels::attention_forward(att_.data(), probs_.data(), q_.data(), k_.data(), v_.data(), B, T,
                             c_.n_heads, c_.n_kv_heads, D, c_.causal);
  kernels::linear_forward(y, att_.data(), o_proj.matrix(), n, qd, d);
}

void Attention::backward(float* dx, const float* dy) {
  const int64_t n = B_ * T_, d = c_.d_model, D = c_.head_dim;
  const int64_t qd = int64_t(c_.n_heads) * D, kvd = int64_t(c_.n_kv_heads) * D;
  datt_.resize({n, qd});
  dq_.resize({n, qd});
  dk_.resize({n, kvd});
  dv_.resize({n, kvd});
  kernels::linear_backward_input(datt_.data(), dy, o_proj.w.data(), n, qd, d);
  kernels::linear_backward_weight(o_proj.g.data(), dy, att_.data(), n, qd, d);
  kernels::attention_backward(dq_.data(), dk_.data(), dv_.data(), datt_.data(), probs_.data(),
                              q_.data(), k_.data(), v_.data(), B_, T_, c_.n_heads, c_.n_kv_heads, D, c_.causal);
  kernels::rope_backward(dq_.data(), positions_.data(), n, c_.n_heads, D, c_.rope_theta);
  kernels::rope_backward(dk_.data(), positions_.data(), n, c_.n_kv_heads, D, c_.rope_theta);
  if (q_norm) {
    // dq_, dk_ are the gradients of the normed q, k: through the norms to the projections (the
    // forward's q_, k_ serve as scratch; they are not needed any more).
    q_norm->backward(q_.data(), dq_.data());
    k_norm->backward(k_.data(), dk_.data());
    std::swap(q_, dq_);
    std::swap(k_, dk_);
  }
  bias_grad(q_bias.get(), dq_.data(), n);
  bias_grad(k_bias.get(), dk_.data(), n);
  bias_grad(v_bias.get(), dv_.data(), n);
  kernels::linear_backward_input(dx, dq_.data(), q_proj.w.data(), n, d, qd);
  kernels::linear_backward_input(dx, dk_.data(), k_proj.w.data(), n, d, kvd, true);
  kernels::linear_backward_input(dx, dv_.data(), v_proj.w.data(), n, d, kvd, true);
  kernels::linear_backward_weight(q_proj.g.data(), dq_.data(), x_, n, d, qd);
  kernels::linear_backward_weight(k_proj.g.data(), dk_.data(), x_, n, d, kvd);
  kernels::linear_backward_weight(v_proj.g.data(), dv_.data(), x_, n, d, kvd);
}

void Attention::init_cache(LayerKVCache& cache, int64_t capacity) const {
  cache.k = Tensor({capacity, c_.n_kv_heads, c_.head_dim});
  cache.v = Tensor({capacity, c_.n_kv_heads, c_.head_dim});
  cache.len = 0;
}

void Attention::forward_cached(float* y, const float* x, int64_t n, LayerKVCache& cache) {
  const int64_t d = c_.d_model, D = c_.head_dim;
  const int64_t qd = int64_t(c_.n_heads) * D, kvd = int64_t(c_.n_kv_heads) * D;
  MOE_ASSERT(cache.len + n <= cache.capacity());
  q_.resize({n, qd});
  att_.resize({n, qd});
  positions_.resize(n);
  for (int64_t i = 0; i < n; ++i) positions_[i] = int32_t(cache.len + i);
  float* kc = cache.k.data() + cache.len * kvd;
  float* vc = cache.v.data() + cache.len * kvd;
  project_qkv(q_.data(), kc, vc, x, n);
  if (q_norm) {  // in place: each row is read before it is written
    q_norm->apply(q_.data(), q_.data(), norm_rows(n, c_.n_heads));
    k_norm->apply(kc, kc, norm_rows(n, c_.n_kv_heads));
  }
  kernels::rope_forward(q_.data(), positions_.data(), n, c_.n_heads, D, c_.rope_theta);
  kernels::rope_forward(kc, positions_.data(), n, c_.n_kv_heads, D, c_.rope_theta);
  if (n > 1) {
    // A prefill, of an empty cache or after a kept prefix: GEMMs over the cache replace n decode
    // steps, with one block of scores per thread rather than [heads, n, n] probabilities.
    kernels::attention_prefill(att_.data(), q_.data(), cache.k.data(), cache.v.data(), n, cache.len,
                               c_.n_heads, c_.n_kv_heads, D);
  } else {
    scratch_.resize({cache.len + 1});
    kernels::attention_decode(att_.data(), q_.data(), cache.k.data(), cache.v.data(), cache.len + 1,
                              c_.n_heads, c_.n_kv_heads, D, scratch_.data());
  }
  cache.len += n;
  kernels::linear_forward(y, att_.data(), o_proj.matrix(), n, qd, d);
}

// The projections, norms and rotations run once over the S rows (rows of one matrix product: each
// weight is read once per step); each sequence then appends its row to its cache and attends over
// it, the sequences spread over the threads.
void Attention::decode_batch(float* y, const float* x, const std::vector<LayerKVCache*>& caches) {
  const int64_t S = int64_t(caches.size()), d = c_.d_model, D = c_.head_dim;
  const int64_t qd = int64_t(c_.n_heads) * D, kvd = int64_t(c_.n_kv_heads) * D;
  if (S == 0) return;
  q_.resize({S, qd});
  k_.resize({S, kvd});
  v_.resize({S, kvd});
  att_.resize({S, qd});
  positions_.resize(S);
  for (int64_t s = 0; s < S; ++s) positions_[s] = int32_t(caches[s]->len);
  project_qkv(q_.data(), k_.data(), v_.data(), x, S);
  if (q_norm) {
    q_norm->apply(q_.data(), q_.data(), norm_rows(S, c_.n_heads));
    k_norm->apply(k_.data(), k_.data(), norm_rows(S, c_.n_kv_heads));
  }
  kernels::rope_forward(q_.data(), positions_.data(), S, c_.n_heads, D, c_.rope_theta);
  kernels::rope_forward(k_.data(), positions_.data(), S, c_.n_kv_heads, D, c_.rope_theta);
  append_and_attend(att_.data(), q_.data(), k_.data(), v_.data(), caches, c_.n_heads, c_.n_kv_heads, D);
  kernels::linear_forward(y, att_.data(), o_proj.matrix(), S, qd, d);
}

}  // namespace moe
