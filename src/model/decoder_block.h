#pragma once
// One decoder layer:
//   h = x + attn(rmsnorm1(x)); out = h + ffn(rmsnorm2(h))
// where ffn is whatever the architecture gives layer i (model/arch/): routed experts, a dense SwiGLU
// MLP or a PEER layer.
#include <memory>
#include <vector>

#include "dist/communicator.h"
#include "model/config.h"
#include "moe/moe_layer.h"
#include "moe/peer_layer.h"
#include "nn/self_attention.h"
#include "nn/ffn.h"
#include "nn/rmsnorm.h"

namespace moe {

class DecoderBlock {
 public:
  // With layout.expert_parallel R > 1, a MoE layer holds only this rank's E / R experts.
  DecoderBlock(const ModelConfig& c, int layer, const dist::ParallelLayout& layout);
  RMSNorm input_layernorm, post_attention_layernorm;
  std::unique_ptr<SelfAttention> self_attn;  // the architecture's: grouped-query or latent
  std::unique_ptr<FFN> ffn;  // tensors under config.ffn_prefix(i)
  // The routed experts or the PEER layer of ffn; nullptr when it is of another kind.
  MoELayer* moe() const { return ffn->routed(); }
  PEERLayer* peer() const { return ffn->peer(); }

  void params(ParamList& out);
  // x, out: [B*T, d]; x must stay alive until backward.
  void forward(float* out, const float* x, int64_t B, int64_t T);
  // dx: [B*T, d] assigned.
  void backward(float* dx, const float* dout);
  // Inference with a KV cache: n new tokens. x, out: [n, d].
  void forward_cached(float* out, const float* x, int64_t n, LayerKVCache& cache);
  // One new token for each of S sequences: row s of x, out [S, d] with cache *caches[s]. Attention
  // per sequence, the FFN once over the S rows.
  void decode_step(float* out, const float* x, const std::vector<LayerKVCache*>& caches);

 private:
  int64_t n_ = 0;
  int d_;
  Tensor a_, h_, b_;        // [n, d]: normed input, after attention, normed h
  Tensor dtmp_, dh_;         // [n, d]
};

}  // namespace moe
