#include "nn/mla_attention.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/gemm.h"
#include "kernels/rope.h"

namespace moe {

namespace {
// DeepSeek's rope part is interleaved: pair (2i, 2i+1). The kernels rotate halves (i, i + R/2),
// so the rope part is de-interleaved first, as the Hugging Face code does (the rotated part then
// stays in that order, for queries and keys alike).
void deinterleave(float* out, const float* in, int64_t R) {
  for (int64_t i = 0; i < R / 2; ++i) {
    out[i] = in[2 * i];
    out[R / 2 + i] = in[2 * i + 1];
  }
}
void interleave(float* out, const float* in, int64_t R) {  // the inverse (and the transpose)
  for (int64_t i = 0; i < R / 2; ++i) {
    out[2 * i] = in[i];
    out[2 * i + 1] = in[R / 2 + i];
  }
}
}  // namespace

MLAttention::MLAttention(const std::string& p, const MLAConfig& c)
    : kv_a_proj_with_mqa(p + ".kv_a_proj_with_mqa.weight", {c.kv_lora_rank + c.qk_rope_head_dim, c.d_model}),
      kv_b_proj(p + ".kv_b_proj.weight", {int64_t(c.n_heads) * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank}),
      o_proj(p + ".o_proj.weight", {c.d_model, int64_t(c.n_heads) * c.v_head_dim}),
      kv_a_layernorm(p + ".kv_a_layernorm.weight", c.kv_lora_rank, c.norm_eps),
      c_(c),
      H_(c.n_heads),
      Dq_(c.qk_nope_head_dim + c.qk_rope_head_dim),
      Dv_(c.v_head_dim),
      Dp_(std::max(Dq_, Dv_)) {
  if (c.n_heads < 1 || c.kv_lora_rank < 1 || c.qk_rope_head_dim < 2 || c.qk_rope_head_dim % 2 || c.v_head_dim < 1 ||
      c.qk_nope_head_dim < 0 || c.q_lora_rank < 0)
    throw Error("[attention] " + p + ": invalid latent attention sizes");
  const int64_t qd = H_ * Dq_;
  if (c.q_lora_rank > 0) {
    q_a_proj = std::make_unique<Param>(p + ".q_a_proj.weight", Shape{c.q_lora_rank, c.d_model});
    q_a_layernorm = std::make_unique<RMSNorm>(p + ".q_a_layernorm.weight", c.q_lora_rank, c.norm_eps);
    q_b_proj = std::make_unique<Param>(p + ".q_b_proj.weight", Shape{qd, c.q_lora_rank});
  } else {
    q_proj = std::make_unique<Param>(p + ".q_proj.weight", Shape{qd, c.d_model});
  }
  // The forward reads the projections through matrix(): a model loaded to run may keep them 16-bit.
  for (Param* w : {q_a_proj.get(), q_b_proj.get(), q_proj.get(), &kv_a_proj_with_mqa, &kv_b_proj, &o_proj})
    if (w) w->may_stay_16bit = true;
  inv_freq_ = c.rope_scaling.inv_freq(c.qk_rope_head_dim, c.rope_theta);
  rope_scale_ = c.rope_scaling.cos_sin_scale();
  // The kernels divide by sqrt(Dp); the model's scale is Dq^-1/2 (times YaRN's factor).
  q_scale_ = float(std::sqrt(double(Dp_)) / std::sqrt(double(Dq_))) * c.rope_scaling.softmax_scale();
}

void MLAttention::params(ParamList& out) {
  if (q_proj) {
    out.push_back(q_proj.get());
  } else {
    out.insert(out.end(), {q_a_proj.get(), &q_a_layernorm->weight, q_b_proj.get()});
  }
  out.insert(out.end(), {&kv_a_proj_with_mqa, &kv_a_layernorm.weight, &kv_b_proj, &o_proj});
}

void MLAttention::project(float* q, float* k, float* v, const float* x, int64_t n) {
  const int64_t d = c_.d_model, nope = c_.qk_nope_head_dim, R = c_.qk_rope_head_dim, rkv = c_.kv_lora_rank;
  const int64_t qd = H_ * Dq_, kvd = H_ * (nope + Dv_);
  qr_.resize({n, qd});
  if (q_proj) {
    kernels::linear_forward(qr_.data(), x, q_proj->matrix(), n, d, qd);
  } else {
    const int64_t rq = c_.q_lora_rank;
    qa_.resize({n, rq});
    qan_.resize({n, rq});
    kernels::linear_forward(qa_.data(), x, q_a_proj->matrix(), n, d, rq);
    q_a_layernorm->forward(qan_.data(), qa_.data(), n);
    kernels::linear_forward(qr_.data(), qan_.data(), q_b_proj->matrix(), n, rq, qd);
  }
  ckv_.resize({n, rkv + R});
  c_raw_.resize({n, rkv});
  cn_.resize({n, rkv});
  kv_.resize({n, kvd});
  kernels::linear_forward(ckv_.data(), x, kv_a_proj_with_mqa.matrix(), n, d, rkv + R);
  for (int64_t t = 0; t < n; ++t) std::memcpy(c_raw_.data() + t * rkv, ckv_.data() + t * (rkv + R), rkv * sizeof(float));
  kv_a_layernorm.forward(cn_.data(), c_raw_.data(), n);
  kernels::linear_forward(kv_.data(), cn_.data(), kv_b_proj.matrix(), n, rkv, kvd);
  // Rotary parts: the queries' [n, H, R] and the shared key's [n, 1, R] (in pe_'s last row block).
  pe_.resize({n * (H_ + 1), R});
  float* qpe = pe_.data();
  float* kpe = pe_.data() + n * H_ * R;
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t h = 0; h < H_; ++h) deinterleave(qpe + (t * H_ + h) * R, qr_.data() + t * qd + h * Dq_ + nope, R);
    deinterleave(kpe + t * R, ckv_.data() + t * (rkv + R) + rkv, R);
  }
  kernels::rope_forward_freq(qpe, pos_.data(), n, H_, R, inv_freq_.data(), rope_scale_);
  kernels::rope_forward_freq(kpe, pos_.data(), n, 1, R, inv_freq_.data(), rope_scale_);
  std::memset(q, 0, sizeof(float) * n * H_ * Dp_);
  std::memset(k, 0, sizeof(float) * n * H_ * Dp_);
  std::memset(v, 0, sizeof(float) * n * H_ * Dp_);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < H_; ++h) {
      float* qo = q + (t * H_ + h) * Dp_;
      float* ko = k + (t * H_ + h) * Dp_;
      float* vo = v + (t * H_ + h) * Dp_;
      const float* qi = qr_.data() + t * qd + h * Dq_;
      const float* kvi = kv_.data() + t * kvd + h * (nope + Dv_);
      for (int64_t i = 0; i < nope; ++i) qo[i] = qi[i] * q_scale_, ko[i] = kvi[i];
      for (int64_t i = 0; i < R; ++i) qo[nope + i] = qpe[(t * H_ + h) * R + i] * q_scale_, ko[nope + i] = kpe[t * R + i];
      for (int64_t i = 0; i < Dv_; ++i) vo[i] = kvi[nope + i];
    }
}

void MLAttention::output(float* y, int64_t n) {
  o_.resize({n, H_ * Dv_});
  for (int64_t r = 0; r < n * H_; ++r) std::memcpy(o_.data() + r * Dv_, att_.data() + r * Dp_, Dv_ * sizeof(float));
  kernels::linear_forward(y, o_.data(), o_proj.matrix(), n, H_ * Dv_, c_.d_model);
}

void MLAttention::forward(float* y, const float* x, int64_t B, int64_t T) {
  const int64_t n = B * T;
  B_ = B;
  T_ = T;
  x_ = x;
  pos_.resize(n);
  for (int64_t i = 0; i < n; ++i) pos_[i] = int32_t(i % T);
  q_.resize({n, H_, Dp_});
  k_.resize({n, H_, Dp_});
  v_.resize({n, H_, Dp_});
  att_.resize({n, H_, Dp_});
  probs_.resize({B, H_, T, T});
  project(q_.data(), k_.data(), v_.data(), x, n);
  kernels::attention_forward(att_.data(), probs_.data(), q_.data(), k_.data(), v_.data(), B, T, H_, H_, Dp_);
  output(y, n);
}

void MLAttention::backward(float* dx, const float* dy) {
  const int64_t n = B_ * T_, d = c_.d_model, nope = c_.qk_nope_head_dim, R = c_.qk_rope_head_dim;
  const int64_t rkv = c_.kv_lora_rank, qd = H_ * Dq_, kvd = H_ * (nope + Dv_);
  do_.resize({n, H_ * Dv_});
  kernels::linear_backward_input(do_.data(), dy, o_proj.w.data(), n, H_ * Dv_, d);
  kernels::linear_backward_weight(o_proj.g.data(), dy, o_.data(), n, H_ * Dv_, d);
  datt_.resize({n, H_, Dp_});
  datt_.zero();
  for (int64_t r = 0; r < n * H_; ++r) std::memcpy(datt_.data() + r * Dp_, do_.data() + r * Dv_, Dv_ * sizeof(float));
  dq_.resize({n, H_, Dp_});
  dk_.resize({n, H_, Dp_});
  dv_.resize({n, H_, Dp_});
  kernels::attention_backward(dq_.data(), dk_.data(), dv_.data(), datt_.data(), probs_.data(), q_.data(), k_.data(),
                              v_.data(), B_, T_, H_, H_, Dp_);
  // Back through the assembly: the rotary parts into pe_ (queries [n, H, R], shared key [n, 1, R]).
  dqr_.resize({n, qd});
  dkv_.resize({n, kvd});
  pe_.resize({n * (H_ + 1), R});
  float* qpe = pe_.data();
  float* kpe = pe_.data() + n * H_ * R;
  std::memset(kpe, 0, sizeof(float) * n * R);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < H_; ++h) {
      const float* dqi = dq_.data() + (t * H_ + h) * Dp_;
      const float* dki = dk_.data() + (t * H_ + h) * Dp_;
      const float* dvi = dv_.data() + (t * H_ + h) * Dp_;
      float* dqo = dqr_.data() + t * qd + h * Dq_;
      float* dkvo = dkv_.data() + t * kvd + h * (nope + Dv_);
      for (int64_t i = 0; i < nope; ++i) dqo[i] = dqi[i] * q_scale_, dkvo[i] = dki[i];
      for (int64_t i = 0; i < R; ++i) qpe[(t * H_ + h) * R + i] = dqi[nope + i] * q_scale_, kpe[t * R + i] += dki[nope + i];
      for (int64_t i = 0; i < Dv_; ++i) dkvo[nope + i] = dvi[i];
    }
  kernels::rope_backward_freq(qpe, pos_.data(), n, H_, R, inv_freq_.data(), rope_scale_);
  kernels::rope_backward_freq(kpe, pos_.data(), n, 1, R, inv_freq_.data(), rope_scale_);
  dckv_.resize({n, rkv + R});
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t h = 0; h < H_; ++h) interleave(dqr_.data() + t * qd + h * Dq_ + nope, qpe + (t * H_ + h) * R, R);
    interleave(dckv_.data() + t * (rkv + R) + rkv, kpe + t * R, R);
  }
  // Keys and values: kv_b_proj, the latent's norm, kv_a_proj_with_mqa.
  dcn_.resize({n, rkv});
  dc_.resize({n, rkv});
  kernels::linear_backward_input(dcn_.data(), dkv_.data(), kv_b_proj.w.data(), n, rkv, kvd);
  kernels::linear_backward_weight(kv_b_proj.g.data(), dkv_.data(), cn_.data(), n, rkv, kvd);
  kv_a_layernorm.backward(dc_.data(), dcn_.data());
  for (int64_t t = 0; t < n; ++t) std::memcpy(dckv_.data() + t * (rkv + R), dc_.data() + t * rkv, rkv * sizeof(float));
  kernels::linear_backward_input(dx, dckv_.data(), kv_a_proj_with_mqa.w.data(), n, d, rkv + R);
  kernels::linear_backward_weight(kv_a_proj_with_mqa.g.data(), dckv_.data(), x_, n, d, rkv + R);
  // Queries.
  if (q_proj) {
    kernels::linear_backward_input(dx, dqr_.data(), q_proj->w.data(), n, d, qd, true);
    kernels::linear_backward_weight(q_proj->g.data(), dqr_.data(), x_, n, d, qd);
  } else {
    const int64_t rq = c_.q_lora_rank;
    dqan_.resize({n, rq});
    dqa_.resize({n, rq});
    kernels::linear_backward_input(dqan_.data(), dqr_.data(), q_b_proj->w.data(), n, rq, qd);
    kernels::linear_backward_weight(q_b_proj->g.data(), dqr_.data(), qan_.data(), n, rq, qd);
    q_a_layernorm->backward(dqa_.data(), dqan_.data());
    kernels::linear_backward_input(dx, dqa_.data(), q_a_proj->w.data(), n, d, rq, true);
    kernels::linear_backward_weight(q_a_proj->g.data(), dqa_.data(), x_, n, d, rq);
  }
}

void MLAttention::init_cache(LayerKVCache& cache, int64_t capacity) const {
  cache.k = Tensor({capacity, H_, Dp_});
  cache.v = Tensor({capacity, H_, Dp_});
  cache.len = 0;
}

void MLAttention::forward_cached(float* y, const float* x, int64_t n, LayerKVCache& cache) {
  MOE_ASSERT(cache.len + n <= cache.capacity());
  const int64_t row = H_ * Dp_;
  pos_.resize(n);
  for (int64_t i = 0; i < n; ++i) pos_[i] = int32_t(cache.len + i);
  q_.resize({n, H_, Dp_});
  att_.resize({n, H_, Dp_});
  float* kc = cache.k.data() + cache.len * row;
  float* vc = cache.v.data() + cache.len * row;
  project(q_.data(), kc, vc, x, n);
  if (n > 1) {  // a prefill, of an empty cache or after a kept prefix: GEMMs over the cache
    kernels::attention_prefill(att_.data(), q_.data(), cache.k.data(), cache.v.data(), n, cache.len, H_, H_, Dp_);
  } else {
    scratch_.resize({cache.len + 1});
    kernels::attention_decode(att_.data(), q_.data(), cache.k.data(), cache.v.data(), cache.len + 1, H_, H_, Dp_,
                              scratch_.data());
  }
  cache.len += n;
  output(y, n);
}

// As Attention::decode_batch: the projections once over the S rows, the attention per sequence.
void MLAttention::decode_batch(float* y, const float* x, const std::vector<LayerKVCache*>& caches) {
  const int64_t S = int64_t(caches.size());
  if (S == 0) return;
  pos_.resize(S);
  for (int64_t s = 0; s < S; ++s) pos_[s] = int32_t(caches[s]->len);
  q_.resize({S, H_, Dp_});
  k_.resize({S, H_, Dp_});
  v_.resize({S, H_, Dp_});
  att_.resize({S, H_, Dp_});
  project(q_.data(), k_.data(), v_.data(), x, S);
  append_and_attend(att_.data(), q_.data(), k_.data(), v_.data(), caches, H_, H_, Dp_);
  output(y, S);
}

}  // namespace moe
