#pragma once
// Multi-head latent attention (DeepSeek-V2/V3), Hugging Face layout under "<prefix>." =
// "model.layers.<i>.self_attn.":
//   queries: q_proj [H*Dq, d], or (q_lora_rank > 0) q_b_proj(RMSNorm(q_a_proj x)) with
//            q_a_proj [r_q, d], q_a_layernorm [r_q], q_b_proj [H*Dq, r_q];  Dq = nope + rope
//   keys and values from a latent: kv_a_proj_with_mqa [r_kv + rope, d] gives [c | k_pe];
//            kv_b_proj [H*(nope + Dv), r_kv] maps RMSNorm(c) (kv_a_layernorm [r_kv]) to each
//            head's [k_nope | v]; k_pe (one head) is shared by all heads
//   per head: q = [q_nope | rope(q_pe)], k = [k_nope | rope(k_pe)], softmax(q k^T * scale) v,
//            scale = Dq^-1/2 (times YaRN's mscale^2), o_proj [d, H*Dv]
// RoPE is DeepSeek's interleaved one: pairs (2i, 2i+1) of the rope part rotate together (the
// Hugging Face code de-interleaves and rotates halves; the dot products are the same), with YaRN
// frequencies when configured (nn/rope_scaling.h).
// The KV cache holds each head's expanded keys and values (not the latent), padded to one width
// max(Dq, Dv) so the grouped-query kernels serve unchanged: zero columns add nothing to q.k, and
// the output's padding columns are dropped.
#include <memory>
#include <string>

#include "nn/param.h"
#include "nn/rmsnorm.h"
#include "nn/rope_scaling.h"
#include "nn/self_attention.h"

namespace moe {

struct MLAConfig {
  int d_model = 0;
  int n_heads = 0;
  int q_lora_rank = 0;  // 0: a plain q_proj
  int kv_lora_rank = 0;
  int qk_nope_head_dim = 0;
  int qk_rope_head_dim = 0;
  int v_head_dim = 0;
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  float norm_eps = 1e-6f;  // of q_a_layernorm and kv_a_layernorm
};

class MLAttention final : public SelfAttention {
 public:
  MLAttention(const std::string& prefix, const MLAConfig& cfg);  // prefix: "model.layers.0.self_attn"
  std::unique_ptr<Param> q_proj;                      // when q_lora_rank == 0
  std::unique_ptr<Param> q_a_proj, q_b_proj;          // when q_lora_rank > 0
  std::unique_ptr<RMSNorm> q_a_layernorm;
  Param kv_a_proj_with_mqa, kv_b_proj, o_proj;
  RMSNorm kv_a_layernorm;

  // See SelfAttention.
  void params(ParamList& out) override;
  void forward(float* y, const float* x, int64_t B, int64_t T) override;
  void backward(float* dx, const float* dy) override;
  void forward_cached(float* y, const float* x, int64_t n, LayerKVCache& cache) override;
  void init_cache(LayerKVCache& cache, int64_t capacity) const override;
  void decode_batch(float* y, const float* x, const std::vector<LayerKVCache*>& caches) override;
  int64_t d_model() const override { return c_.d_model; }

 private:
  // Queries, keys and values of n tokens at positions pos_, padded to Dp: q [n, H, Dp] (scaled so
  // that the kernel's 1/sqrt(Dp) gives the model's scale), k, v [n, H, Dp].
  void project(float* q, float* k, float* v, const float* x, int64_t n);
  void output(float* y, int64_t n);  // att_ [n, H, Dp] -> o_ [n, H*Dv] -> y [n, d]

  MLAConfig c_;
  int64_t H_, Dq_, Dv_, Dp_;
  float q_scale_, rope_scale_;
  std::vector<float> inv_freq_;  // [rope / 2]
  int64_t B_ = 0, T_ = 0;
  const float* x_ = nullptr;
  std::vector<int32_t> pos_;  // [n]
  Tensor qa_, qan_;           // [n, r_q]: q_a_proj x and its norm (q_lora_rank > 0)
  Tensor qr_;                 // [n, H*Dq] raw queries
  Tensor ckv_;                // [n, r_kv + rope]
  Tensor c_raw_, cn_;         // [n, r_kv]: the latent and its norm
  Tensor kv_;                 // [n, H*(nope + Dv)]
  Tensor q_, k_, v_;          // [n, H, Dp]
  Tensor probs_;              // [B, H, T, T]
  Tensor att_;                // [n, H, Dp]
  Tensor o_;                  // [n, H*Dv]
  Tensor scratch_, pe_;       // decode scratch; [n, H, rope] rope scratch
  // backward scratch: dq_, dk_, dv_, datt_ [n, H, Dp]; do_ [n, H*Dv]; dqr_ [n, H*Dq];
  // dkv_ [n, H*(nope+Dv)]; dcn_, dc_ [n, r_kv]; dckv_ [n, r_kv+rope]; dqan_, dqa_ [n, r_q]
  Tensor dq_, dk_, dv_, datt_, do_, dqr_, dkv_, dcn_, dc_, dckv_, dqan_, dqa_;
};

}  // namespace moe
