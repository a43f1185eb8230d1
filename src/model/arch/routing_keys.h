#pragma once
// The routing keys every architecture with routed experts reads: experts per token, renormalisation,
// the router (model/router_registry.h) and its balancing coefficients and capacities. Hugging Face
// names where they exist; the others are this project's extension keys (docs/checkpoints.md).
#include <optional>
#include <string>
#include <vector>

#include "model/arch/config_reader.h"
#include "model/config.h"

namespace moe {

// norm_topk_prob_default: the architecture's default when the key is absent; none: renormalise for
// k >= 2, not for k = 1 (Switch).
void read_routing_keys(const ConfigReader& r, ModelConfig& c, std::optional<bool> norm_topk_prob_default);
const std::vector<std::string>& routing_keys();
// The routing keys of the Hugging Face families that name their experts num_experts (Qwen2-MoE,
// Qwen3-MoE, OLMoE): experts per token, renormalisation, balancing coefficients, capacities.
void write_hf_routing_keys(const ModelConfig& c, nlohmann::json& j);
// Those families route with softmax top-k only: any other "router" is an error naming the family.
void require_topk_softmax(const ModelConfig& c, const std::string& src);

}  // namespace moe
