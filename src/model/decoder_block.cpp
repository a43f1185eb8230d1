#include "model/decoder_block.h"

#include "model/arch/architecture.h"

namespace moe {

DecoderBlock::DecoderBlock(const ModelConfig& c, int i, const dist::ParallelLayout& layout)
    : input_layernorm("model.layers." + std::to_string(i) + ".input_layernorm.weight", c.hidden_size, c.rms_norm_eps),
      post_attention_layernorm("model.layers." + std::to_string(i) + ".post_attention_layernorm.weight",
                               c.hidden_size, c.rms_norm_eps),
      d_(c.hidden_size) {
  const Architecture& arch = architecture_of(c);
  self_attn = arch.make_attention(c, i);
  ffn = arch.make_ffn(c, i, layout);
}

void DecoderBlock::params(ParamList& out) {
  out.push_back(&input_layernorm.weight);
  self_attn->params(out);
  out.push_back(&post_attention_layernorm.weight);
  ffn->params(out);
}

void DecoderBlock::forward(float* out, const float* x, int64_t B, int64_t T) {
  const int64_t n = B * T, m = n * d_;
  n_ = n;
  a_.resize({n, d_});
  h_.resize({n, d_});
  b_.resize({n, d_});
  input_layernorm.forward(a_.data(), x, n);
  self_attn->forward(h_.data(), a_.data(), B, T);
  for (int64_t i = 0; i < m; ++i) h_[i] += x[i];
  post_attention_layernorm.forward(b_.data(), h_.data(), n);
  ffn->forward(out, b_.data(), n, T);
  for (int64_t i = 0; i < m; ++i) out[i] += h_[i];
}

void DecoderBlock::backward(float* dx, const float* dout) {
  const int64_t n = n_, m = n * d_;
  dtmp_.resize({n, d_});
  dh_.resize({n, d_});
  // out = h + ffn(norm2(h))
  ffn->backward(dtmp_.data(), dout);
  post_attention_layernorm.backward(dh_.data(), dtmp_.data());
  for (int64_t i = 0; i < m; ++i) dh_[i] += dout[i];
  // h = x + attn(norm1(x))
  self_attn->backward(dtmp_.data(), dh_.data());
  input_layernorm.backward(dx, dtmp_.data());
  for (int64_t i = 0; i < m; ++i) dx[i] += dh_[i];
}

void DecoderBlock::forward_cached(float* out, const float* x, int64_t n, LayerKVCache& cache) {
  const int64_t m = n * d_;
  a_.resize({n, d_});
  h_.resize({n, d_});
  b_.resize({n, d_});
  input_layernorm.apply(a_.data(), x, n);
  self_attn->forward_cached(h_.data(), a_.data(), n, cache);
  for (int64_t i = 0; i < m; ++i) h_[i] += x[i];
  post_attention_layernorm.apply(b_.data(), h_.data(), n);
  ffn->forward(out, b_.data(), n, n);
  for (int64_t i = 0; i < m; ++i) out[i] += h_[i];
}

}  // namespace moe

namespace moe {

void DecoderBlock::decode_step(float* out, const float* x, const std::vector<LayerKVCache*>& caches) {
  const int64_t S = int64_t(caches.size()), m = S * d_;
  a_.resize({S, d_});
  h_.resize({S, d_});
  b_.resize({S, d_});
  input_layernorm.apply(a_.data(), x, S);
  self_attn->decode_batch(h_.data(), a_.data(), caches);
  for (int64_t i = 0; i < m; ++i) h_[i] += x[i];
  post_attention_layernorm.apply(b_.data(), h_.data(), S);
  ffn->forward(out, b_.data(), S, 1);  // S sequences of one token each
  for (int64_t i = 0; i < m; ++i) out[i] += h_[i];
}

}  // namespace moe
