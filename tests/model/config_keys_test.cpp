// The key table of model/arch/config_keys.h: one list gives the names, the reads and the writes;
// types are checked, required keys are required, absent keys leave the field alone.
#include "model/arch/config_keys.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace moe {
namespace {

constexpr ConfigKey kKeys[] = {
    {"n_routed_experts", &ModelConfig::num_local_experts, true},
    {"routed_scaling_factor", &ModelConfig::routed_scaling_factor},
    {"norm_topk_prob", &ModelConfig::norm_topk_prob},
    {"topk_method", &ModelConfig::topk_method},
    {"mlp_only_layers", &ModelConfig::mlp_only_layers},
};

TEST(ConfigKeys, ReadWriteAndNamesComeFromOneList) {
  const nlohmann::json j = {{"n_routed_experts", 6}, {"routed_scaling_factor", 2.5}, {"norm_topk_prob", false},
                            {"topk_method", "noaux_tc"}, {"mlp_only_layers", {0, 2}}};
  ModelConfig c;
  read_config_keys(ConfigReader(j, "cfg.json"), c, kKeys);
  EXPECT_EQ(c.num_local_experts, 6);
  EXPECT_FLOAT_EQ(c.routed_scaling_factor, 2.5f);
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_EQ(c.topk_method, "noaux_tc");
  EXPECT_EQ(c.mlp_only_layers, (std::vector<int>{0, 2}));
  nlohmann::json out;
  write_config_keys(c, out, kKeys);
  EXPECT_EQ(out, j);
  EXPECT_EQ(config_key_names(kKeys, {"rope_scaling"}),
            (std::vector<std::string>{"n_routed_experts", "routed_scaling_factor", "norm_topk_prob", "topk_method",
                                      "mlp_only_layers", "rope_scaling"}));
}

TEST(ConfigKeys, AbsentKeysKeepTheFieldAndBadOnesNameFileAndKey) {
  ModelConfig c;
  c.topk_method = "greedy";
  read_config_keys(ConfigReader({{"n_routed_experts", 4}}, "cfg.json"), c, kKeys);
  EXPECT_EQ(c.topk_method, "greedy");
  auto message = [&](const nlohmann::json& j) {
    try {
      read_config_keys(ConfigReader(j, "cfg.json"), c, kKeys);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({{"routed_scaling_factor", 1}}).find("cfg.json: missing required key 'n_routed_experts'"), std::string::npos);
  EXPECT_NE(message({{"n_routed_experts", 2.5}}).find("key 'n_routed_experts' must be an integer"), std::string::npos);
  EXPECT_NE(message({{"n_routed_experts", 2}, {"topk_method", 3}}).find("key 'topk_method' must be a string"), std::string::npos);
  EXPECT_NE(message({{"n_routed_experts", 2}, {"norm_topk_prob", 1}}).find("'norm_topk_prob' must be true or false"), std::string::npos);
  EXPECT_NE(message({{"n_routed_experts", 2}, {"mlp_only_layers", {"a"}}}).find("'mlp_only_layers' must hold integers"), std::string::npos);
}

}  // namespace
}  // namespace moe
