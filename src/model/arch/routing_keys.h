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

}  // namespace moe
