#pragma once
// Causal (or, for encoders, bidirectional) grouped-query self-attention with rotary embeddings (rotate-half), Mixtral layout:
// q_proj [Hq*D, d], k_proj/v_proj [Hkv*D, d], o_proj [d, Hq*D], no biases; optionally q/k/v biases
// (Qwen2) and an RMSNorm of q and k before the rotation (Qwen3, OLMoE).
#include <memory>
#include <string>

#include "nn/kv_cache.h"
#include "nn/param.h"
#include "nn/rmsnorm.h"
#include "nn/self_attention.h"

namespace moe {

// RMSNorm of q and k before the rotation: none, over each head ([D] weights, Qwen3) or over the
// whole projection ([Hq*D] and [Hkv*D] weights, OLMoE).
enum class QKNorm { none, per_head, whole };

struct AttentionConfig {
  int d_model = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  float rope_theta = 10000.0f;
  bool qkv_bias = false;  // Qwen2: q_proj/k_proj/v_proj carry biases
  bool causal = true;     // false: bidirectional (an encoder over image patches; no KV cache)
  QKNorm qk_norm = QKNorm::none;  // weights "<prefix>.q_norm.weight", "<prefix>.k_norm.weight"
  float norm_eps = 1e-6f;         // of the q/k norms
};

class Attention final : public SelfAttention {
 public:
  Attention(const std::string& prefix, const AttentionConfig& cfg);  // prefix: "model.layers.0.self_attn"
  Param q_proj, k_proj, v_proj, o_proj;
  std::unique_ptr<Param> q_bias, k_bias, v_bias;  // [Hq*D], [Hkv*D], [Hkv*D] when qkv_bias
  std::unique_ptr<RMSNorm> q_norm, k_norm;         // when qk_norm != none

  // See SelfAttention.
  void params(ParamList& out) override;
  void forward(float* y, const float* x, int64_t B, int64_t T) override;
  void backward(float* dx, const float* dy) override;
  void forward_cached(float* y, const float* x, int64_t n, LayerKVCache& cache) override;
  void init_cache(LayerKVCache& cache, int64_t capacity) const override;
  void decode_batch(float* y, const float* x, const std::vector<LayerKVCache*>& caches) override;
  int64_t d_model() const override { return c_.d_model; }

 private:
  void project_qkv(float* q, float* k, float* v, const float* x, int64_t n) const;
  int64_t norm_rows(int64_t n, int heads) const { return c_.qk_norm == QKNorm::per_head ? n * heads : n; }
  AttentionConfig c_;
  int64_t B_ = 0, T_ = 0;
  const float* x_ = nullptr;
  Tensor q_, k_, v_;  // [B*T, H*, D] after rotary
  Tensor q_raw_, k_raw_;  // [B*T, H*, D] before the q/k norms (kept for their backward)
  Tensor probs_;      // [B, Hq, T, T]
  Tensor att_;        // [B*T, Hq*D] attention output before o_proj
  std::vector<int32_t> positions_;  // [B*T]
  Tensor dq_, dk_, dv_, datt_;      // backward scratch, same shapes as q_, k_, v_, att_
  Tensor scratch_;                  // inference scratch
};

}  // namespace moe
