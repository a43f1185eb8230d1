#include "model/decoder_block.h"

#include <cmath>

#include "kernels/gemm.h"

#include "dist/expert_bank_parallel.h"
#include "moe/expert_bank_swiglu.h"
#include "model/router_registry.h"

namespace moe {

namespace {
AttentionConfig attn_config(const ModelConfig& c) {
  return {.d_model = c.hidden_size, .n_heads = c.num_attention_heads,
          .n_kv_heads = c.num_key_value_heads, .head_dim = c.hdim(), .rope_theta = c.rope_theta,
          .qkv_bias = c.qkv_bias, .causal = c.causal};
}
}  // namespace

DecoderBlock::DecoderBlock(const ModelConfig& c, int i, const dist::ParallelLayout& layout)
    : input_layernorm("model.layers." + std::to_string(i) + ".input_layernorm.weight", c.hidden_size, c.rms_norm_eps),
      post_attention_layernorm("model.layers." + std::to_string(i) + ".post_attention_layernorm.weight",
                               c.hidden_size, c.rms_norm_eps),
      self_attn("model.layers." + std::to_string(i) + ".self_attn", attn_config(c)),
      d_(c.hidden_size) {
  const std::string p = c.ffn_prefix(i);
  if (c.peer_layer(i)) {
    peer = std::make_unique<PEERLayer>(p, c.peer_config());
  } else if (c.sparse_layer(i)) {
    auto router = find_router(c.router)->make(c, p + ".gate.weight", i);
    const bool qwen = c.is_qwen2_moe();
    auto bank = layout.remote_experts
                    ? layout.remote_experts({.layer = i, .n_experts = c.num_local_experts, .d_model = c.hidden_size, .grid = c.expert_grid})
                    : dist::make_swiglu_experts(
                          p, SwiGLUBankConfig{.d_model = c.hidden_size, .d_ff = c.intermediate_size,
                                              .n_experts = c.num_local_experts, .gate_name = qwen ? "gate_proj" : "w1",
                                              .up_name = qwen ? "up_proj" : "w3", .down_name = qwen ? "down_proj" : "w2"},
                          layout);
    router->set_data_group(layout.world);
    moe = std::make_unique<MoELayer>(std::move(router), std::move(bank), c.hidden_size);
    if (c.shared_ffn() > 0)
      shared = std::make_unique<DenseFFN>(p + (qwen ? ".shared_expert" : ".shared_experts"), c.hidden_size, c.shared_ffn());
    if (shared && c.shared_expert_gate)
      shared_gate = std::make_unique<Param>(p + ".shared_expert_gate.weight", Shape{1, c.hidden_size});
  } else {
    mlp = std::make_unique<DenseFFN>(p, c.hidden_size, c.is_moe() ? c.dense_intermediate_size : c.intermediate_size);
  }
}

void DecoderBlock::params(ParamList& out) {
  out.push_back(&input_layernorm.weight);
  self_attn.params(out);
  out.push_back(&post_attention_layernorm.weight);
  if (moe) moe->params(out);
  if (shared) shared->params(out);
  if (shared_gate) out.push_back(shared_gate.get());
  if (mlp) mlp->params(out);
  if (peer) peer->params(out);
}

void DecoderBlock::forward(float* out, const float* x, int64_t B, int64_t T) {
  const int64_t n = B * T, m = n * d_;
  n_ = n;
  a_.resize({n, d_});
  h_.resize({n, d_});
  b_.resize({n, d_});
  input_layernorm.forward(a_.data(), x, n);
  self_attn.forward(h_.data(), a_.data(), B, T);
  for (int64_t i = 0; i < m; ++i) h_[i] += x[i];
  post_attention_layernorm.forward(b_.data(), h_.data(), n);
  ffn_forward(out, n, T);
  for (int64_t i = 0; i < m; ++i) out[i] += h_[i];
}

void DecoderBlock::ffn_forward(float* out, int64_t n, int64_t T) {
  if (moe) moe->router().set_sequence_length(T);
  if (moe) moe->forward(out, b_.data(), n);
  else if (peer) peer->forward(out, b_.data(), n);
  else mlp->forward(out, b_.data(), n);
  if (shared) {
    shared_out_.resize({n, d_});
    shared->forward(shared_out_.data(), b_.data(), n);
    if (shared_gate) {
      // Qwen2-MoE: out += sigmoid(b . w_s) * shared(b)
      shared_gate_.resize({n});
      kernels::linear_forward(shared_gate_.data(), b_.data(), shared_gate->w.data(), n, d_, 1);
      for (int64_t t = 0; t < n; ++t) {
        const float gt = shared_gate_[t] = 1.0f / (1.0f + std::exp(-shared_gate_[t]));
        for (int64_t i = 0; i < d_; ++i) out[t * d_ + i] += gt * shared_out_[t * d_ + i];
      }
    } else {
      for (int64_t i = 0; i < n * d_; ++i) out[i] += shared_out_[i];
    }
  }
}

void DecoderBlock::backward(float* dx, const float* dout) {
  const int64_t n = n_, m = n * d_;
  dtmp_.resize({n, d_});
  dh_.resize({n, d_});
  // out = h + ffn(norm2(h))
  if (moe) moe->backward(dtmp_.data(), dout);
  else if (peer) peer->backward(dtmp_.data(), dout);
  else mlp->backward(dtmp_.data(), dout);
  if (shared) {
    const float* dshared = dout;
    if (shared_gate) {
      // y = g * s(b), g = sigmoid(z), z = b . w_s: ds = g dy; dz = <s, dy> g (1 - g)
      dgated_.resize({n, d_});
      dgate_logit_.resize({n});
      float* dz = dgate_logit_.data();
      for (int64_t t = 0; t < n; ++t) {
        const float gt = shared_gate_[t];
        float dot = 0;
        for (int64_t i = 0; i < d_; ++i) {
          dot += shared_out_[t * d_ + i] * dout[t * d_ + i];
          dgated_[t * d_ + i] = gt * dout[t * d_ + i];
        }
        dz[t] = dot * gt * (1.0f - gt);
      }
      kernels::linear_backward_input(dtmp_.data(), dz, shared_gate->w.data(), n, d_, 1, /*accumulate=*/true);
      kernels::linear_backward_weight(shared_gate->g.data(), dz, b_.data(), n, d_, 1);
      dshared = dgated_.data();
    }
    shared_out_.resize({n, d_});  // reused as the shared expert's input gradient
    shared->backward(shared_out_.data(), dshared);
    for (int64_t i = 0; i < m; ++i) dtmp_[i] += shared_out_[i];
  }
  post_attention_layernorm.backward(dh_.data(), dtmp_.data());
  for (int64_t i = 0; i < m; ++i) dh_[i] += dout[i];
  // h = x + attn(norm1(x))
  self_attn.backward(dtmp_.data(), dh_.data());
  input_layernorm.backward(dx, dtmp_.data());
  for (int64_t i = 0; i < m; ++i) dx[i] += dh_[i];
}

void DecoderBlock::forward_cached(float* out, const float* x, int64_t n, LayerKVCache& cache) {
  const int64_t m = n * d_;
  a_.resize({n, d_});
  h_.resize({n, d_});
  b_.resize({n, d_});
  input_layernorm.apply(a_.data(), x, n);
  self_attn.forward_cached(h_.data(), a_.data(), n, cache);
  for (int64_t i = 0; i < m; ++i) h_[i] += x[i];
  post_attention_layernorm.apply(b_.data(), h_.data(), n);
  ffn_forward(out, n, n);
  for (int64_t i = 0; i < m; ++i) out[i] += h_[i];
}

}  // namespace moe
