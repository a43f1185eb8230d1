#include "model/router_registry.h"

#include <vector>

#include "moe/router_expert_choice.h"
#include "moe/router_grid.h"
#include "moe/router_noisy_topk.h"
#include "moe/router_sigmoid_bias.h"
#include "moe/router_topk.h"

namespace moe {
namespace {

// Balancing coefficients are per layer: the model's loss adds every layer's.
float per_layer(const ModelConfig& c, float coef) { return coef / float(c.num_hidden_layers); }

// topk_softmax and switch (top-1, raw probability, capacity: set by the config's defaults).
std::unique_ptr<Router> make_topk(const ModelConfig& c, const std::string& name, int) {
  return std::make_unique<TopKRouter>(
      name, TopKRouterConfig{.d_model = c.hidden_size, .n_expert = c.num_local_experts,
                             .k = c.num_experts_per_tok, .norm_topk_prob = c.norm_topk_prob,
                             .aux_coef = per_layer(c, c.router_aux_loss_coef),
                             .z_coef = per_layer(c, c.router_z_loss_coef),
                             .seq_aux_coef = per_layer(c, c.router_seq_aux_loss_coef),
                             .capacity_factor = c.capacity_factor, .eval_capacity_factor = c.eval_capacity_factor});
}

std::unique_ptr<Router> make_noisy(const ModelConfig& c, const std::string& name, int layer) {
  return std::make_unique<NoisyTopKRouter>(
      name, NoisyTopKRouterConfig{.d_model = c.hidden_size, .n_expert = c.num_local_experts,
                                  .k = c.num_experts_per_tok,
                                  .importance_coef = per_layer(c, c.router_importance_loss_coef),
                                  .load_coef = per_layer(c, c.router_load_loss_coef), .seed = uint64_t(layer)});
}

std::unique_ptr<Router> make_sigmoid_bias(const ModelConfig& c, const std::string& name, int) {
  return std::make_unique<SigmoidBiasRouter>(
      name, SigmoidBiasRouterConfig{.d_model = c.hidden_size, .n_expert = c.num_local_experts,
                                    .k = c.num_experts_per_tok, .norm_topk_prob = c.norm_topk_prob,
                                    .routed_scaling_factor = c.routed_scaling_factor,
                                    .bias_update_speed = c.bias_update_speed,
                                    .aux_coef = per_layer(c, c.router_aux_loss_coef),
                                    .seq_aux_coef = per_layer(c, c.router_seq_aux_loss_coef)});
}

std::unique_ptr<Router> make_expert_choice(const ModelConfig& c, const std::string& name, int) {
  return std::make_unique<ExpertChoiceRouter>(
      name, ExpertChoiceRouterConfig{.d_model = c.hidden_size, .n_expert = c.num_local_experts,
                                     .capacity = c.expert_choice_capacity,
                                     .z_coef = per_layer(c, c.router_z_loss_coef)});
}

std::unique_ptr<Router> make_grid(const ModelConfig& c, const std::string& name, int) {
  return std::make_unique<GridRouter>(
      name, GridRouterConfig{.d_model = c.hidden_size, .grid = GridShape{c.expert_grid}, .k = c.num_experts_per_tok,
                             .beam_size = c.grid_beam_size, .aux_coef = per_layer(c, c.router_aux_loss_coef)});
}

int64_t gate_params(const ModelConfig& c) { return int64_t(c.num_local_experts) * c.hidden_size; }

const std::vector<RouterKind>& kinds() {
  static const std::vector<RouterKind> k = {
      {"topk_softmax", make_topk, gate_params},
      {"switch", make_topk, gate_params},
      {"noisy_topk", make_noisy, [](const ModelConfig& c) { return 2 * gate_params(c); }},  // + noise weights
      {"sigmoid_bias", make_sigmoid_bias, [](const ModelConfig& c) { return gate_params(c) + c.num_local_experts; }},
      {"expert_choice", make_expert_choice, gate_params},
      {"grid", make_grid,
       [](const ModelConfig& c) {
         int64_t rows = 0;
         for (int g : c.expert_grid) rows += g;
         return rows * c.hidden_size;
       }},
  };
  return k;
}

}  // namespace

const RouterKind* find_router(const std::string& name) {
  for (const RouterKind& k : kinds())
    if (k.name == name) return &k;
  return nullptr;
}

std::string router_names() {
  std::string s;
  for (const RouterKind& k : kinds()) s += (s.empty() ? "" : ", ") + k.name;
  return s;
}

}  // namespace moe
