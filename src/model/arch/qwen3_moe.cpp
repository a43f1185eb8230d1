// Qwen3-MoE (model_type "qwen3_moe", e.g. Qwen3-30B-A3B): Qwen2-MoE's layout without the q/k/v
// biases and the shared expert, plus an RMSNorm of each head's q and k before RoPE
// ("self_attn.q_norm.weight", "self_attn.k_norm.weight", [head_dim]) and an explicit head_dim.
// Softmax top-k routing over "mlp.gate", renormalised when norm_topk_prob (default false; the
// published checkpoints set it true); dense layers from decoder_sparse_step and mlp_only_layers.
#include "model/arch/architecture.h"
#include "model/arch/routing_keys.h"

namespace moe {
namespace {

class Qwen3Moe final : public Architecture {
 public:
  std::string model_type() const override { return "qwen3_moe"; }
  std::string hf_class() const override { return "Qwen3MoeForCausalLM"; }
  bool has_experts() const override { return true; }
  std::vector<std::string> keys() const override {
    std::vector<std::string> k = routing_keys();
    k.insert(k.end(), {"num_experts", "moe_intermediate_size", "decoder_sparse_step", "mlp_only_layers"});
    return k;
  }
  void read(const ConfigReader& r, ModelConfig& c) const override {
    // Without head_dim Hugging Face's Qwen3MoeConfig does not fall back to hidden_size / heads.
    r.num("head_dim", c.head_dim, true);
    r.num("num_experts", c.num_local_experts, true);
    r.num("moe_intermediate_size", c.intermediate_size, true);
    r.num("decoder_sparse_step", c.decoder_sparse_step);
    r.int_list("mlp_only_layers", c.mlp_only_layers);
    c.qk_norm = QKNorm::per_head;
    read_routing_keys(r, c, /*norm_topk_prob_default=*/false);
  }
  void write(const ModelConfig& c, nlohmann::json& j) const override {
    write_hf_routing_keys(c, j);
    j["head_dim"] = c.hdim();
    j["moe_intermediate_size"] = c.intermediate_size;
    j["intermediate_size"] = c.dense_intermediate_size;
    j["decoder_sparse_step"] = c.decoder_sparse_step;
    j["mlp_only_layers"] = c.mlp_only_layers;
  }
  void validate(const ModelConfig& c, const std::string& src) const override {
    require_topk_softmax(c, src);
    if (c.n_shared_experts > 0) throw Error("[config] " + src + ": qwen3_moe has no shared experts");
  }

 protected:
  std::string sparse_block_name() const override { return "mlp"; }
  ExpertNames expert_names() const override { return {.gate = "gate_proj", .up = "up_proj", .down = "down_proj"}; }
};

}  // namespace

const Architecture& qwen3_moe_architecture() {
  static const Qwen3Moe a;
  return a;
}

}  // namespace moe
