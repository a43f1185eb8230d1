// ModelConfig: Hugging Face keys, defaults, extension keys and clear errors.
#include "model/config.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "model/decoder_lm.h"
#include "model/unimplemented_keys.h"
#include "io/atomic_file.h"
#include "vision/vision_config.h"

namespace moe {
namespace {

nlohmann::json base() {
  return {{"model_type", "mixtral"}, {"vocab_size", 256}, {"hidden_size", 32}, {"intermediate_size", 48},
          {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
          {"num_local_experts", 4}, {"num_experts_per_tok", 2}, {"max_position_embeddings", 64}};
}

std::string error_of(const nlohmann::json& j) {
  try {
    ModelConfig::from_json(j, "cfg.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ModelConfig, DefaultsAndRoundTrip) {
  ModelConfig c = ModelConfig::from_json(base(), "cfg.json");
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_EQ(c.router, "topk_softmax");
  EXPECT_EQ(c.hdim(), 8);
  nlohmann::json j = base();
  j["num_experts_per_tok"] = 1;
  EXPECT_FALSE(ModelConfig::from_json(j, "x").norm_topk_prob);  // k = 1: raw probability
  j["some_future_key"] = {1, 2};
  ModelConfig k1 = ModelConfig::from_json(j, "x");
  EXPECT_EQ(k1.to_json()["some_future_key"], j["some_future_key"]);  // unknown keys survive
  EXPECT_EQ(ModelConfig::from_json(k1.to_json(), "y").to_json(), k1.to_json());
}

// Every shipped config (experiments, benchmarks, examples) loads and validates: a typo in one would
// otherwise surface only minutes into a long run.
TEST(ModelConfig, EveryShippedConfigLoads) {
  int n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(std::string(MOE_SOURCE_DIR) + "/configs")) {
    if (e.path().extension() != ".json") continue;
    SCOPED_TRACE(e.path().string());
    // Image classifiers' configs (patch_size) hold a model config for their blocks beside their own keys.
    if (vision::VisionConfig::is_vision(nlohmann::json::parse(read_file(e.path().string()))))
      EXPECT_NO_THROW(vision::VisionConfig::load(e.path().string()));
    else
      EXPECT_NO_THROW(ModelConfig::load(e.path().string()));
    ++n;
  }
  EXPECT_GE(n, 20);
}

TEST(ModelConfig, SwitchRouterDefaultsAndChecks) {
  nlohmann::json j = base();
  j["router"] = "switch";
  j["num_experts_per_tok"] = 1;
  ModelConfig c = ModelConfig::from_json(j, "cfg.json");
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_FLOAT_EQ(c.capacity_factor, 1.25f);
  EXPECT_FLOAT_EQ(c.eval_capacity_factor, 2.0f);
  EXPECT_EQ(ModelConfig::from_json(c.to_json(), "x").capacity_factor, 1.25f);
  j["num_experts_per_tok"] = 2;
  EXPECT_NE(error_of(j).find("num_experts_per_tok must be 1"), std::string::npos);
  j["num_experts_per_tok"] = 1;
  j["norm_topk_prob"] = true;
  EXPECT_NE(error_of(j).find("norm_topk_prob must be false"), std::string::npos);
  j = base();
  j["router"] = "magic";
  EXPECT_NE(error_of(j).find("unknown router 'magic'"), std::string::npos);
  j = base();
  j["capacity_factor"] = -1;
  EXPECT_NE(error_of(j).find("capacity factors"), std::string::npos);
}

TEST(ModelConfig, GridRouterKeysAndChecks) {
  nlohmann::json j = base();
  j["router"] = "grid";
  EXPECT_NE(error_of(j).find("needs expert_grid"), std::string::npos);
  j["expert_grid"] = {2, 2};
  j["grid_beam_size"] = 3;
  ModelConfig c = ModelConfig::from_json(j, "cfg.json");
  EXPECT_EQ(c.expert_grid, (std::vector<int>{2, 2}));
  EXPECT_EQ(c.grid_beam_size, 3);
  EXPECT_EQ(ModelConfig::from_json(c.to_json(), "x").to_json(), c.to_json());
  j["expert_grid"] = {2, 3};
  EXPECT_NE(error_of(j).find("product of the grid dimensions must equal the expert count"), std::string::npos);
  j["expert_grid"] = {4, 0};
  EXPECT_NE(error_of(j).find(">= 1"), std::string::npos);
  j["expert_grid"] = {2, 2};
  j["grid_beam_size"] = -1;
  EXPECT_NE(error_of(j).find("grid_beam_size"), std::string::npos);
  j = base();
  j["expert_grid"] = {2, 2};
  EXPECT_NE(error_of(j).find("only for router \"grid\""), std::string::npos);
  j = base();
  j["router"] = "magic";
  EXPECT_NE(error_of(j).find("supported: topk_softmax, switch, noisy_topk, sigmoid_bias, deepseek, expert_choice, grid"),
            std::string::npos);
}

TEST(ModelConfig, DenseLayersInsideMixtral) {
  auto j = base();
  j["mlp_only_layers"] = {0};
  j["dense_intermediate_size"] = 96;
  ModelConfig c = ModelConfig::from_json(j, "cfg.json");
  EXPECT_FALSE(c.sparse_layer(0));
  EXPECT_TRUE(c.sparse_layer(1));
  EXPECT_EQ(c.ffn_prefix(0), "model.layers.0.mlp");
  EXPECT_EQ(c.dense_intermediate_size, 96);
  EXPECT_EQ(ModelConfig::from_json(c.to_json(), "back").to_json(), c.to_json());
  // attention + norms + one dense layer of width 96 + one MoE layer (4 experts of 48 and a gate)
  const int64_t attn = 2 * 32 * 32 + 2 * 32 * 16, layer = attn + 2 * 32;
  EXPECT_EQ(c.total_params(), 2 * 256 * 32 + 32 + 2 * layer + 3 * 32 * 96 + 4 * 3 * 32 * 48 + 4 * 32);
  j["dense_intermediate_size"] = 0;
  EXPECT_NE(error_of(j).find("dense_intermediate_size"), std::string::npos);
}

TEST(ModelConfig, ClearErrors) {
  auto with = [](const char* k, nlohmann::json v) {
    nlohmann::json j = base();
    j[k] = v;
    return error_of(j);
  };
  EXPECT_NE(with("hidden_size", "big").find("'hidden_size' must be an integer"), std::string::npos);
  EXPECT_NE(with("hidden_size", 30).find("not divisible"), std::string::npos);
  EXPECT_NE(with("vocab_size", 255).find("vocab_size must be at least 256"), std::string::npos);
  EXPECT_EQ(with("vocab_size", 32000), "(no error)");  // a tokenizer's vocabulary (tokenizer.json beside the weights)
  EXPECT_NE(with("num_experts_per_tok", 5).find("exceeds num_local_experts"), std::string::npos);
  EXPECT_NE(with("num_key_value_heads", 3).find("not a multiple"), std::string::npos);
  EXPECT_NE(with("model_type", "llama").find("unsupported model_type 'llama'"), std::string::npos);
  EXPECT_NE(with("hidden_act", "gelu").find("hidden_act"), std::string::npos);
  nlohmann::json j = base();
  j.erase("hidden_size");
  EXPECT_NE(error_of(j).find("missing required key 'hidden_size'"), std::string::npos);
  EXPECT_NE(error_of(j).find("cfg.json"), std::string::npos);
}

// Every validation branch of ModelConfig::validate, one bad value each, with the key in the error.
TEST(ModelConfig, EveryValidationBranchIsAClearError) {
  struct Case {
    nlohmann::json patch;  // merged into base()
    const char* expect;
  };
  const std::vector<Case> cases = {
      {{{"vocab_size", 0}}, "'vocab_size' must be positive"},
      {{{"hidden_size", 0}}, "'hidden_size' must be positive"},
      {{{"hidden_size", -32}}, "'hidden_size' must be positive"},
      {{{"intermediate_size", 0}}, "'intermediate_size' must be positive"},
      {{{"num_hidden_layers", 0}}, "'num_hidden_layers' must be positive"},
      {{{"num_attention_heads", 0}}, "'num_attention_heads' must be positive"},
      {{{"num_key_value_heads", -1}}, "'num_key_value_heads' must be positive"},
      {{{"max_position_embeddings", 0}}, "'max_position_embeddings' must be positive"},
      {{{"num_local_experts", 0}}, "'num_local_experts' must be positive"},
      {{{"num_experts_per_tok", 0}}, "'num_experts_per_tok' must be positive"},
      {{{"head_dim", 7}}, "head dimension must be even"},
      {{{"hidden_size", 28}, {"num_attention_heads", 4}, {"num_key_value_heads", 2}}, "head dimension must be even"},
      {{{"head_dim", 2048}}, "larger than 1024"},
      {{{"rms_norm_eps", 0}}, "rms_norm_eps must be positive"},
      {{{"rms_norm_eps", -1e-6}}, "rms_norm_eps must be positive"},
      {{{"rope_theta", 0}}, "rope_theta must be positive"},
      {{{"rope_theta", -10000.0}}, "rope_theta must be positive"},
      {{{"router_aux_loss_coef", -0.01}}, "loss coefficients must be >= 0"},
      {{{"router_z_loss_coef", -1}}, "loss coefficients must be >= 0"},
      {{{"router_seq_aux_loss_coef", -1}}, "loss coefficients must be >= 0"},
      {{{"router_importance_loss_coef", -1}}, "loss coefficients must be >= 0"},
      {{{"router_load_loss_coef", -1}}, "loss coefficients must be >= 0"},
      {{{"routed_scaling_factor", 0}}, "routed_scaling_factor must be positive"},
      {{{"bias_update_speed", -1}}, "bias_update_speed must be >= 0"},
      {{{"expert_choice_capacity", 0}}, "expert_choice_capacity must be positive"},
      {{{"capacity_factor", -1}}, "capacity factors must be >= 0"},
      {{{"eval_capacity_factor", -1}}, "capacity factors must be >= 0"},
      {{{"n_shared_experts", -1}}, "n_shared_experts and shared_expert_intermediate_size must be >= 0"},
      {{{"mlp_only_layers", {2}}}, "mlp_only_layers holds 2, outside [0, 2)"},
      {{{"mlp_only_layers", {-1}}}, "mlp_only_layers holds -1"},
      {{{"mlp_only_layers", "0"}}, "'mlp_only_layers' must be a list"},
      {{{"mlp_only_layers", {0}}, {"dense_intermediate_size", 0}}, "'dense_intermediate_size' must be positive"},
      {{{"router", "nope"}}, "unknown router 'nope'"},
      {{{"router", "grid"}}, "needs expert_grid"},
      {{{"expert_grid", {2, 2}}}, "expert_grid is only for router \"grid\""},
      {{{"router", "noisy_topk"}, {"num_experts_per_tok", 4}}, "needs num_experts_per_tok < num_local_experts"},
      {{{"router", "switch"}, {"num_experts_per_tok", 2}}, "num_experts_per_tok must be 1"},
      {{{"router", "switch"}, {"num_experts_per_tok", 1}, {"norm_topk_prob", true}}, "does not renormalise"},
      {{{"ffn_type", "dense"}}, "unknown ffn_type 'dense'"},
      {{{"ffn_type", "peer"}, {"peer_layers", {5}}}, "peer_layers holds 5"},
      {{{"ffn_type", "peer"}, {"peer_activation", "tanh"}}, "peer_activation must be"},
      {{{"ffn_type", "peer"}, {"peer_score", "max"}}, "peer_score must be"},
  };
  for (const Case& c : cases) {
    nlohmann::json j = base();
    j.merge_patch(c.patch);
    EXPECT_NE(error_of(j).find(c.expect), std::string::npos) << c.patch.dump() << " gave: " << error_of(j);
  }
  // qwen2_moe's own keys.
  nlohmann::json q = base();
  q.erase("num_local_experts");
  q.merge_patch({{"model_type", "qwen2_moe"}, {"num_experts", 4}, {"moe_intermediate_size", 24}});
  EXPECT_EQ(error_of(q), "(no error)");
  for (const auto& [patch, expect] : std::vector<std::pair<nlohmann::json, const char*>>{
           {{{"decoder_sparse_step", 0}}, "decoder_sparse_step must be >= 1"},
           {{{"decoder_sparse_step", -2}}, "decoder_sparse_step must be >= 1"},
           {{{"mlp_only_layers", {7}}}, "mlp_only_layers holds 7"},
           {{{"shared_expert_intermediate_size", -1}}, "must be >= 0"},
           {{{"router", "switch"}}, "the router key is not supported"},
       }) {
    nlohmann::json j = q;
    j.merge_patch(patch);
    EXPECT_NE(error_of(j).find(expect), std::string::npos) << patch.dump() << " gave: " << error_of(j);
  }
}

// A head_dim other than hidden_size / num_attention_heads is implemented: it sets the projections.
TEST(ModelConfig, ExplicitHeadDimIsHonoured) {
  nlohmann::json j = base();
  j["head_dim"] = 16;  // hidden 32 / 4 heads would be 8
  const ModelConfig c = ModelConfig::from_json(j, "cfg.json");
  EXPECT_EQ(c.hdim(), 16);
  DecoderLM m(c);
  int checked = 0;
  for (Param* p : m.params()) {
    if (p->name == "model.layers.0.self_attn.q_proj.weight") {
      EXPECT_EQ(p->w.dim(0), 4 * 16);  // [Hq * head_dim, hidden]
      EXPECT_EQ(p->w.dim(1), 32);
      ++checked;
    }
    if (p->name == "model.layers.0.self_attn.o_proj.weight") {
      EXPECT_EQ(p->w.dim(1), 4 * 16);  // [hidden, Hq * head_dim]
      ++checked;
    }
  }
  EXPECT_EQ(checked, 2);
}

// Hugging Face keys that change the computation and are not implemented: refused with their
// name when set, accepted at their neutral value (as published configs often carry them).
TEST(ModelConfig, UnimplementedComputationKeysAreRefusedByName) {
  const std::vector<std::tuple<const char*, nlohmann::json, nlohmann::json>> keys = {
      // key, a value that changes the computation, a neutral value
      {"sliding_window", 16, nullptr},
      {"use_sliding_window", true, false},
      {"layer_types", {"full_attention", "sliding_attention"}, {"full_attention", "full_attention"}},
      {"rope_scaling", {{"type", "yarn"}, {"factor", 4.0}}, nullptr},
      {"partial_rotary_factor", 0.5, 1.0},
      {"attention_bias", true, false},
      {"mlp_bias", true, false},
      {"router_jitter_noise", 0.01, 0.0},
      {"attention_dropout", 0.1, 0.0},
      {"hidden_dropout", 0.1, 0.0},
      {"pretraining_tp", 2, 1},
      {"qk_layernorm", true, false},
      {"use_qk_norm", true, false},
      {"final_logit_softcapping", 30.0, nullptr},
      {"attn_logit_softcapping", 50.0, nullptr},
      {"quantization_config", {{"quant_method", "gptq"}}, nullptr},
  };
  // The list above is the library's list: a key added there must be tested here.
  ASSERT_EQ(keys.size(), unimplemented_keys().size());
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_STREQ(std::get<0>(keys[i]), unimplemented_keys()[i].key);
  for (const auto& [key, bad, neutral] : keys) {
    nlohmann::json j = base();
    j[key] = bad;
    const std::string e = error_of(j);
    EXPECT_NE(e.find(std::string("'") + key + "'"), std::string::npos) << key << ": " << e;
    EXPECT_NE(e.find("not implemented"), std::string::npos) << key << ": " << e;
    if (std::string(key) == "quantization_config") continue;  // no neutral value but absence
    j[key] = neutral;
    EXPECT_EQ(error_of(j), "(no error)") << key << " = " << neutral.dump();
  }
  nlohmann::json j = base();
  j["sliding_window"] = 64;  // covers every position (max_position_embeddings 64): no effect
  EXPECT_EQ(error_of(j), "(no error)");
  j["sliding_window"] = 16;  // switched off (Qwen configs carry a window they do not use)
  j["use_sliding_window"] = false;
  EXPECT_EQ(error_of(j), "(no error)");
  j["use_sliding_window"] = true;
  EXPECT_NE(error_of(j).find("'sliding_window' = 16"), std::string::npos) << error_of(j);
}

}  // namespace
}  // namespace moe
