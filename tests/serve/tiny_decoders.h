#pragma once
// Tiny random decoders of the serving tests: Mixtral (grouped-query attention) and DeepSeek-V3
// (latent attention), 2 layers, a 256-token vocabulary.
#include <string>

#include "model/config.h"

namespace moe::test {

inline ModelConfig tiny_decoder(const std::string& type, int64_t max_positions) {
  nlohmann::json j = {{"model_type", type}, {"vocab_size", 256}, {"hidden_size", 16}, {"intermediate_size", 24},
                      {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
                      {"max_position_embeddings", max_positions}, {"num_experts_per_tok", 2}};
  if (type == "mixtral") j["num_local_experts"] = 4;
  if (type == "deepseek_v3")
    j.update({{"n_routed_experts", 4}, {"moe_intermediate_size", 12}, {"n_group", 2}, {"topk_group", 1},
              {"q_lora_rank", 6}, {"kv_lora_rank", 6}, {"qk_nope_head_dim", 4}, {"qk_rope_head_dim", 2},
              {"v_head_dim", 5}, {"first_k_dense_replace", 0}});
  return ModelConfig::from_json(j, type);
}

}  // namespace moe::test
