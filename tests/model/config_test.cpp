// ModelConfig: Hugging Face keys, defaults, extension keys and clear errors.
#include "model/config.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"

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
  EXPECT_NE(error_of(j).find("supported: topk_softmax, switch, noisy_topk, sigmoid_bias, expert_choice, grid"),
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
  EXPECT_NE(with("vocab_size", 32000).find("vocab_size must be 256"), std::string::npos);
  EXPECT_NE(with("num_experts_per_tok", 5).find("exceeds num_local_experts"), std::string::npos);
  EXPECT_NE(with("num_key_value_heads", 3).find("not a multiple"), std::string::npos);
  EXPECT_NE(with("model_type", "llama").find("unsupported model_type 'llama'"), std::string::npos);
  EXPECT_NE(with("hidden_act", "gelu").find("hidden_act"), std::string::npos);
  nlohmann::json j = base();
  j.erase("hidden_size");
  EXPECT_NE(error_of(j).find("missing required key 'hidden_size'"), std::string::npos);
  EXPECT_NE(error_of(j).find("cfg.json"), std::string::npos);
}

}  // namespace
}  // namespace moe
