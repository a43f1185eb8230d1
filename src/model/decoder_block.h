#pragma once
// One Mixtral / Mistral decoder layer:
//   h = x + attn(rmsnorm1(x)); out = h + ffn(rmsnorm2(h)), ffn = sparse MoE (mixtral), SwiGLU
//   (mistral) or PEER (the layers a config's peer_layers names)
#include <memory>

#include "dist/communicator.h"
#include "model/config.h"
#include "moe/moe_layer.h"
#include "moe/peer_layer.h"
#include "nn/attention.h"
#include "nn/dense_ffn.h"
#include "nn/rmsnorm.h"

namespace moe {

class DecoderBlock {
 public:
  // With layout.expert_parallel R > 1, a MoE layer holds only this rank's E / R experts.
  DecoderBlock(const ModelConfig& c, int layer, const dist::ParallelLayout& layout);
  RMSNorm input_layernorm, post_attention_layernorm;
  Attention self_attn;
  std::unique_ptr<MoELayer> moe;   // mixtral: "model.layers.{i}.block_sparse_moe"
  std::unique_ptr<DenseFFN> mlp;   // mistral: "model.layers.{i}.mlp"
  std::unique_ptr<PEERLayer> peer;  // "ffn_type": "peer": "model.layers.{i}.peer"
  std::unique_ptr<DenseFFN> shared;  // always-on experts: "...block_sparse_moe.shared_experts"
  std::unique_ptr<Param> shared_gate;  // Qwen2-MoE: [1, d], shared output *= sigmoid(x w_s)

  void params(ParamList& out);
  // x, out: [B*T, d]; x must stay alive until backward.
  void forward(float* out, const float* x, int64_t B, int64_t T);
  // dx: [B*T, d] assigned.
  void backward(float* dx, const float* dout);
  // Inference with a KV cache: n new tokens. x, out: [n, d].
  void forward_cached(float* out, const float* x, int64_t n, LayerKVCache& cache);

 private:
  void ffn_forward(float* out, int64_t n, int64_t T);  // FFN of b_ (MoE + shared experts, or dense)
  int64_t n_ = 0;
  int d_;
  Tensor a_, h_, b_, tmp_;  // [n, d]: normed input, after attention, normed h, scratch
  Tensor dtmp_, dh_;         // [n, d]
  Tensor shared_out_;        // [n, d]
  Tensor shared_gate_;       // [n]: sigmoid(x w_s)
  Tensor dgated_;            // [n, d]
  Tensor dgate_logit_;       // [n]
};

}  // namespace moe
