#include "model/router_registry.h"

#include <vector>

#include "core/error.h"
#include "moe/expert_grid.h"
#include "moe/router_deepseek.h"
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

std::unique_ptr<Router> make_deepseek(const ModelConfig& c, const std::string& name, int) {
  using M = DeepSeekRouterConfig::Method;
  const M method = c.topk_method == "noaux_tc" ? M::noaux_tc
                   : c.topk_method == "group_limited_greedy" ? M::group_limited_greedy
                                                             : M::greedy;
  return std::make_unique<DeepSeekRouter>(
      name, DeepSeekRouterConfig{.d_model = c.hidden_size, .n_expert = c.num_local_experts, .k = c.num_experts_per_tok,
                                 .sigmoid = c.scoring_func == "sigmoid", .method = method, .n_group = c.n_group,
                                 .topk_group = c.topk_group, .norm_topk_prob = c.norm_topk_prob,
                                 .routed_scaling_factor = c.routed_scaling_factor,
                                 .scale_normalized = c.scale_normalized_weights,
                                 .aux_coef = per_layer(c, c.router_aux_loss_coef),
                                 .bias_update_speed = c.bias_update_speed});
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

[[noreturn]] void bad(const std::string& src, const std::string& what) { throw Error("[config] " + src + ": " + what); }

// Every router but grid: no grid keys.
void no_grid(const ModelConfig& c, const std::string& src) {
  if (!c.expert_grid.empty()) bad(src, "expert_grid is only for router \"grid\", not '" + c.router + "'");
}

void no_defaults(ModelConfig&) {}
void no_keys(const ModelConfig&, nlohmann::json&) {}

const std::vector<RouterKind>& kinds() {
  static const std::vector<RouterKind> k = {
      {"topk_softmax", make_topk, gate_params, no_defaults, no_keys, no_grid},
      {"switch", make_topk, gate_params,
       [](ModelConfig& c) {
         c.norm_topk_prob = false;
         c.capacity_factor = 1.25f;
         c.eval_capacity_factor = 2.0f;
       },
       no_keys,
       [](const ModelConfig& c, const std::string& src) {
         no_grid(c, src);
         if (c.num_experts_per_tok != 1)
           bad(src, "router \"switch\" routes each token to one expert; num_experts_per_tok must be 1, got " +
                        std::to_string(c.num_experts_per_tok));
         if (c.norm_topk_prob) bad(src, "router \"switch\" does not renormalise (norm_topk_prob must be false)");
       }},
      {"noisy_topk", make_noisy, [](const ModelConfig& c) { return 2 * gate_params(c); },  // + noise weights
       no_defaults,
       [](const ModelConfig& c, nlohmann::json& j) {
         j["router_importance_loss_coef"] = c.router_importance_loss_coef;
         j["router_load_loss_coef"] = c.router_load_loss_coef;
       },
       [](const ModelConfig& c, const std::string& src) {
         no_grid(c, src);
         if (c.num_experts_per_tok >= c.num_local_experts)
           bad(src, "router \"noisy_topk\" needs num_experts_per_tok < num_local_experts");
       }},
      {"sigmoid_bias", make_sigmoid_bias, [](const ModelConfig& c) { return gate_params(c) + c.num_local_experts; },
       [](ModelConfig& c) { c.router_aux_loss_coef = 0.0f; },  // balanced by the bias instead
       [](const ModelConfig& c, nlohmann::json& j) {
         j["routed_scaling_factor"] = c.routed_scaling_factor;
         j["bias_update_speed"] = c.bias_update_speed;
       },
       no_grid},
      // DeepSeek's gate: its keys are the DeepSeek architectures' (model/arch/deepseek.cpp).
      {"deepseek", make_deepseek,
       [](const ModelConfig& c) { return gate_params(c) + (c.topk_method == "noaux_tc" ? c.num_local_experts : 0); },
       no_defaults, no_keys,
       [](const ModelConfig& c, const std::string& src) {
         no_grid(c, src);
         if (c.model_type.rfind("deepseek", 0) != 0)
           bad(src, "router \"deepseek\" is DeepSeek's gate: it needs model_type deepseek_v2 or deepseek_v3");
       }},
      {"expert_choice", make_expert_choice, gate_params, no_defaults,
       [](const ModelConfig& c, nlohmann::json& j) { j["expert_choice_capacity"] = c.expert_choice_capacity; },
       no_grid},
      {"grid", make_grid,
       [](const ModelConfig& c) {
         int64_t rows = 0;
         for (int g : c.expert_grid) rows += g;
         return rows * c.hidden_size;
       },
       no_defaults,
       [](const ModelConfig& c, nlohmann::json& j) {
         j["expert_grid"] = c.expert_grid;
         j["grid_beam_size"] = c.grid_beam_size;
       },
       [](const ModelConfig& c, const std::string& src) {
         if (c.expert_grid.empty()) bad(src, "router \"grid\" needs expert_grid, the grid's dimensions (e.g. [4, 4])");
         GridShape{c.expert_grid}.check(c.num_local_experts, "[config] " + src + ": expert_grid");
         if (c.grid_beam_size < 0) bad(src, "grid_beam_size must be >= 0 (0: num_experts_per_tok)");
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
