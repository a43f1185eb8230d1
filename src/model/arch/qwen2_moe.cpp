// Qwen2-MoE (model_type "qwen2_moe"): softmax top-k routing without renormalisation by default,
// q/k/v biases, a shared expert whose output is scaled by sigmoid(x . w_s), and dense layers
// (decoder_sparse_step, mlp_only_layers). Its own key names: num_experts, moe_intermediate_size
// (the routed experts' width) and intermediate_size (the dense layers' width); tensors
// "model.layers.{i}.mlp.experts.{e}.gate_proj / up_proj / down_proj", "mlp.gate",
// "mlp.shared_expert.*", "mlp.shared_expert_gate".
#include "model/arch/architecture.h"
#include "model/arch/routing_keys.h"

namespace moe {
namespace {

class Qwen2Moe final : public Architecture {
 public:
  std::string model_type() const override { return "qwen2_moe"; }
  std::string hf_class() const override { return "Qwen2MoeForCausalLM"; }
  bool has_experts() const override { return true; }
  std::vector<std::string> keys() const override {
    std::vector<std::string> k = routing_keys();
    k.insert(k.end(), {"num_experts", "moe_intermediate_size", "shared_expert_intermediate_size",
                       "decoder_sparse_step", "mlp_only_layers"});
    return k;
  }
  void read(const ConfigReader& r, ModelConfig& c) const override {
    r.num("num_experts", c.num_local_experts, true);
    r.num("moe_intermediate_size", c.intermediate_size, true);
    r.num("shared_expert_intermediate_size", c.shared_expert_intermediate_size);
    c.n_shared_experts = c.shared_expert_intermediate_size > 0 ? 1 : 0;
    c.shared_expert_gate = true;
    c.qkv_bias = true;
    r.num("decoder_sparse_step", c.decoder_sparse_step);
    r.int_list("mlp_only_layers", c.mlp_only_layers);
    read_routing_keys(r, c, /*norm_topk_prob_default=*/false);
  }
  void write(const ModelConfig& c, nlohmann::json& j) const override {
    write_hf_routing_keys(c, j);
    j["moe_intermediate_size"] = c.intermediate_size;
    j["intermediate_size"] = c.dense_intermediate_size;
    j["shared_expert_intermediate_size"] = c.shared_ffn();
    j["decoder_sparse_step"] = c.decoder_sparse_step;
    j["mlp_only_layers"] = c.mlp_only_layers;
  }
  void validate(const ModelConfig& c, const std::string& src) const override {
    require_topk_softmax(c, src);
  }

 protected:
  std::string sparse_block_name() const override { return "mlp"; }
  ExpertNames expert_names() const override { return {.gate = "gate_proj", .up = "up_proj", .down = "down_proj"}; }
  std::string shared_expert_name() const override { return "shared_expert"; }
};

}  // namespace

const Architecture& qwen2_moe_architecture() {
  static const Qwen2Moe a;
  return a;
}

}  // namespace moe
