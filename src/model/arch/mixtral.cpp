// Mixtral (model_type "mixtral"): routed SwiGLU experts in "model.layers.{i}.block_sparse_moe"
// (experts.{e}.w1 / w3 / w2, gate.weight). Beside Hugging Face's keys it reads this project's
// extension keys (docs/checkpoints.md): the other routers, dense layers inside the model
// (mlp_only_layers, dense_intermediate_size) and always-on shared experts (n_shared_experts).
#include "model/arch/architecture.h"
#include "model/arch/routing_keys.h"
#include "model/router_registry.h"

namespace moe {
namespace {

class Mixtral final : public Architecture {
 public:
  std::string model_type() const override { return "mixtral"; }
  std::string hf_class() const override { return "MixtralForCausalLM"; }
  bool has_experts() const override { return true; }
  std::vector<std::string> keys() const override {
    std::vector<std::string> k = routing_keys();
    k.insert(k.end(), {"num_local_experts", "mlp_only_layers", "dense_intermediate_size", "n_shared_experts",
                       "shared_expert_intermediate_size"});
    return k;
  }
  void read(const ConfigReader& r, ModelConfig& c) const override {
    r.num("num_local_experts", c.num_local_experts, true);
    read_routing_keys(r, c, /*norm_topk_prob_default: k >= 2*/ std::nullopt);
    r.int_list("mlp_only_layers", c.mlp_only_layers);
    r.num("dense_intermediate_size", c.dense_intermediate_size);
    r.num("n_shared_experts", c.n_shared_experts);
    r.num("shared_expert_intermediate_size", c.shared_expert_intermediate_size);
  }
  void write(const ModelConfig& c, nlohmann::json& j) const override {
    j["num_local_experts"] = c.num_local_experts;
    j["num_experts_per_tok"] = c.num_experts_per_tok;
    j["norm_topk_prob"] = c.norm_topk_prob;
    j["router_aux_loss_coef"] = c.router_aux_loss_coef;
    j["router_z_loss_coef"] = c.router_z_loss_coef;
    const bool topk = c.router == "topk_softmax";
    if (!topk) j["router"] = c.router;
    if (c.router_seq_aux_loss_coef > 0) j["router_seq_aux_loss_coef"] = c.router_seq_aux_loss_coef;
    if (c.capacity_factor > 0 || !topk) j["capacity_factor"] = c.capacity_factor;
    find_router(c.router)->write(c, j);
    if (!c.mlp_only_layers.empty()) {
      j["mlp_only_layers"] = c.mlp_only_layers;
      j["dense_intermediate_size"] = c.dense_intermediate_size;
    }
    if (c.n_shared_experts > 0) {
      j["n_shared_experts"] = c.n_shared_experts;
      j["shared_expert_intermediate_size"] = c.shared_ffn();
    }
    if (c.eval_capacity_factor > 0 || !topk) j["eval_capacity_factor"] = c.eval_capacity_factor;
  }
};

}  // namespace

const Architecture& mixtral_architecture() {
  static const Mixtral a;
  return a;
}

}  // namespace moe
