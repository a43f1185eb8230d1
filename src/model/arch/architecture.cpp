#include "model/arch/architecture.h"

#include "dist/expert_bank_parallel.h"
#include "model/router_registry.h"
#include "moe/expert_bank_swiglu.h"
#include "moe/peer_layer.h"
#include "moe/routed_ffn.h"
#include "nn/attention.h"
#include "nn/dense_ffn.h"

namespace moe {

std::unique_ptr<SelfAttention> Architecture::make_attention(const ModelConfig& c, int i) const {
  return std::make_unique<Attention>(
      "model.layers." + std::to_string(i) + ".self_attn",
      AttentionConfig{.d_model = c.hidden_size, .n_heads = c.num_attention_heads, .n_kv_heads = c.num_key_value_heads,
                      .head_dim = c.hdim(), .rope_theta = c.rope_theta, .qkv_bias = c.qkv_bias, .causal = c.causal,
                      .qk_norm = c.qk_norm, .norm_eps = c.rms_norm_eps});
}

std::string Architecture::ffn_prefix(const ModelConfig& c, int i) const {
  const std::string layer = "model.layers." + std::to_string(i);
  if (c.peer_layer(i)) return layer + ".peer";
  return layer + "." + (c.sparse_layer(i) ? sparse_block_name() : std::string("mlp"));
}

std::unique_ptr<FFN> Architecture::make_ffn(const ModelConfig& c, int i, const dist::ParallelLayout& layout) const {
  const std::string p = ffn_prefix(c, i);
  if (c.peer_layer(i)) return std::make_unique<PEERLayer>(p, c.peer_config());
  if (!c.sparse_layer(i))
    return std::make_unique<DenseFFN>(p, c.hidden_size, has_experts() ? c.dense_intermediate_size : c.intermediate_size);
  auto router = find_router(c.router)->make(c, p + ".gate.weight", i);
  router->set_data_group(layout.world);
  const ExpertNames names = expert_names();
  auto bank = layout.remote_experts
                  ? layout.remote_experts({.layer = i, .n_experts = c.num_local_experts, .d_model = c.hidden_size,
                                           .grid = c.expert_grid})
                  : dist::make_swiglu_experts(p, SwiGLUBankConfig{.d_model = c.hidden_size, .d_ff = c.intermediate_size,
                                                                  .n_experts = c.num_local_experts, .gate_name = names.gate,
                                                                  .up_name = names.up, .down_name = names.down},
                                              layout);
  auto moe = std::make_unique<MoELayer>(std::move(router), std::move(bank), c.hidden_size);
  std::unique_ptr<DenseFFN> shared;
  std::unique_ptr<Param> shared_gate;
  if (c.shared_ffn() > 0) {
    shared = std::make_unique<DenseFFN>(p + "." + shared_expert_name(), c.hidden_size, c.shared_ffn());
    if (c.shared_expert_gate)
      shared_gate = std::make_unique<Param>(p + "." + shared_expert_name() + "_gate.weight", Shape{1, c.hidden_size});
  }
  return std::make_unique<RoutedFFN>(std::move(moe), std::move(shared), std::move(shared_gate), c.hidden_size);
}

}  // namespace moe
