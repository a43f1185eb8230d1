#include "model/arch/routing_keys.h"

#include "core/error.h"
#include "model/router_registry.h"

namespace moe {

const std::vector<std::string>& routing_keys() {
  static const std::vector<std::string> k = {
      "num_experts_per_tok", "norm_topk_prob", "router_aux_loss_coef", "router_z_loss_coef", "router",
      "router_seq_aux_loss_coef", "router_importance_loss_coef", "router_load_loss_coef", "capacity_factor",
      "eval_capacity_factor", "routed_scaling_factor", "bias_update_speed", "expert_choice_capacity", "expert_grid",
      "grid_beam_size"};
  return k;
}

void read_routing_keys(const ConfigReader& r, ModelConfig& c, std::optional<bool> norm_topk_prob_default) {
  r.num("num_experts_per_tok", c.num_experts_per_tok, true);
  c.norm_topk_prob = norm_topk_prob_default.value_or(c.num_experts_per_tok > 1);
  r.str("router", c.router);
  const RouterKind* kind = find_router(c.router);
  if (!kind) r.fail("unknown router '" + c.router + "' (supported: " + router_names() + ")");
  kind->defaults(c);  // the router's own defaults, before the keys that override them
  r.num("norm_topk_prob", c.norm_topk_prob);
  r.num("router_aux_loss_coef", c.router_aux_loss_coef);
  r.num("router_z_loss_coef", c.router_z_loss_coef);
  r.num("router_seq_aux_loss_coef", c.router_seq_aux_loss_coef);
  r.num("router_importance_loss_coef", c.router_importance_loss_coef);
  r.num("router_load_loss_coef", c.router_load_loss_coef);
  r.num("routed_scaling_factor", c.routed_scaling_factor);
  r.num("bias_update_speed", c.bias_update_speed);
  r.num("expert_choice_capacity", c.expert_choice_capacity);
  r.int_list("expert_grid", c.expert_grid);
  r.num("grid_beam_size", c.grid_beam_size);
  r.num("capacity_factor", c.capacity_factor);
  r.num("eval_capacity_factor", c.eval_capacity_factor);
}

void require_topk_softmax(const ModelConfig& c, const std::string& src) {
  if (c.router != "topk_softmax")
    throw Error("[config] " + src + ": " + c.model_type + " routes with softmax top-k; the router key is not supported");
}

void write_hf_routing_keys(const ModelConfig& c, nlohmann::json& j) {
  j["num_experts"] = c.num_local_experts;
  j["num_experts_per_tok"] = c.num_experts_per_tok;
  j["norm_topk_prob"] = c.norm_topk_prob;
  j["router_aux_loss_coef"] = c.router_aux_loss_coef;
  if (c.router_z_loss_coef > 0) j["router_z_loss_coef"] = c.router_z_loss_coef;
  if (c.router_seq_aux_loss_coef > 0) j["router_seq_aux_loss_coef"] = c.router_seq_aux_loss_coef;
  if (c.capacity_factor > 0) j["capacity_factor"] = c.capacity_factor;
  if (c.eval_capacity_factor > 0) j["eval_capacity_factor"] = c.eval_capacity_factor;
}

}  // namespace moe
