// The architecture registry (model/arch/): every model_type found by name, configs that survive a
// write and read, each layer's FFN of the kind and with the tensor names its architecture says.
#include "model/arch/architecture.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "model/decoder_lm.h"
#include "../test_util.h"

namespace moe {
namespace {

nlohmann::json common(const std::string& type) {
  return {{"model_type", type}, {"vocab_size", 256}, {"hidden_size", 16}, {"intermediate_size", 24},
          {"num_hidden_layers", 3}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
          {"max_position_embeddings", 16}};
}

// A small config of each registered architecture, with a dense layer (1) where it can have one.
nlohmann::json example(const std::string& type) {
  nlohmann::json j = common(type);
  if (type == "mixtral") {
    j["num_local_experts"] = 4, j["num_experts_per_tok"] = 2, j["mlp_only_layers"] = {1};
    j["dense_intermediate_size"] = 20, j["n_shared_experts"] = 1;
  } else if (type == "qwen2_moe") {
    j["num_experts"] = 4, j["num_experts_per_tok"] = 2, j["moe_intermediate_size"] = 12;
    j["shared_expert_intermediate_size"] = 8, j["mlp_only_layers"] = {1};
  } else if (type == "qwen3_moe") {
    j["num_experts"] = 4, j["num_experts_per_tok"] = 2, j["moe_intermediate_size"] = 12, j["head_dim"] = 8;
    j["mlp_only_layers"] = {1}, j["norm_topk_prob"] = true;
  } else if (type == "olmoe") {
    j["num_experts"] = 4, j["num_experts_per_tok"] = 2, j["clip_qkv"] = nullptr;
  } else if (type == "deepseek_v2") {  // layer 0 dense (first_k_dense_replace)
    j.update({{"n_routed_experts", 4}, {"num_experts_per_tok", 2}, {"moe_intermediate_size", 12},
              {"n_shared_experts", 2}, {"first_k_dense_replace", 1}, {"topk_method", "group_limited_greedy"},
              {"n_group", 2}, {"topk_group", 1}, {"q_lora_rank", nullptr}, {"kv_lora_rank", 6},
              {"qk_nope_head_dim", 4}, {"qk_rope_head_dim", 2}, {"v_head_dim", 5}, {"aux_loss_alpha", 0.001}});
  } else if (type == "deepseek_v3") {  // layer 1 dense (moe_layer_freq 2)
    j.update({{"n_routed_experts", 4}, {"num_experts_per_tok", 2}, {"moe_intermediate_size", 12},
              {"first_k_dense_replace", 0}, {"moe_layer_freq", 2}, {"n_group", 2}, {"topk_group", 1},
              {"q_lora_rank", 6}, {"kv_lora_rank", 6}, {"qk_nope_head_dim", 4}, {"qk_rope_head_dim", 2},
              {"v_head_dim", 5}, {"num_nextn_predict_layers", 1},
              {"rope_scaling", {{"type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 8},
                                {"mscale", 1.0}, {"mscale_all_dim", 1.0}}}});
  }
  return j;
}

std::vector<std::string> registered() {
  std::vector<std::string> names;
  std::string all = architecture_names(), item;
  for (size_t i = 0; i <= all.size(); ++i) {
    if (i == all.size() || all[i] == ',') {
      names.push_back(item);
      item.clear();
    } else if (all[i] != ' ') {
      item += all[i];
    }
  }
  return names;
}

TEST(Architecture, RegistryFindsEveryNameAndRejectsOthers) {
  const auto names = registered();
  EXPECT_EQ(names, (std::vector<std::string>{"mixtral", "mistral", "qwen2_moe", "qwen3_moe", "olmoe", "deepseek_v2",
                                             "deepseek_v3"}));
  for (const auto& n : names) {
    ASSERT_NE(find_architecture(n), nullptr) << n;
    EXPECT_EQ(find_architecture(n)->model_type(), n);
  }
  EXPECT_EQ(find_architecture("llama"), nullptr);
  ModelConfig c;
  c.model_type = "olmo";
  try {
    architecture_of(c, "cfg.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cfg.json: unsupported model_type 'olmo' (supported: mixtral, mistral, qwen2_moe, qwen3_moe, olmoe, "
                                      "deepseek_v2, deepseek_v3)"),
              std::string::npos) << e.what();
  }
}

TEST(Architecture, EveryConfigSurvivesWriteAndRead) {
  for (const auto& n : registered()) {
    const ModelConfig c = ModelConfig::from_json(example(n), n);
    const nlohmann::json j = c.to_json();
    EXPECT_EQ(j["architectures"][0], find_architecture(n)->hf_class()) << n;
    EXPECT_EQ(ModelConfig::from_json(j, n).to_json(), j) << n;
    // Nothing the architecture reads is mistaken for an unknown key.
    for (const auto& key : find_architecture(n)->keys()) EXPECT_FALSE(c.extra.contains(key)) << n << " " << key;
  }
  // A key another architecture reads is not this one's: kept and written back, not dropped.
  nlohmann::json j = example("mistral");
  j["num_experts_per_tok"] = 2;
  const ModelConfig dense = ModelConfig::from_json(j, "mistral");
  EXPECT_EQ(dense.num_experts_per_tok, 0);
  EXPECT_EQ(dense.to_json()["num_experts_per_tok"], 2);
}

TEST(Architecture, LayersGetTheFFNAndNamesOfTheirArchitecture) {
  struct Want {
    std::string type;
    std::vector<int> routed;  // the layers with routed experts
    std::string ffn0, expert_gate, dense1, q_norm;  // tensor names ("": none)
    int64_t q_norm_size = 0;
  };
  const std::vector<Want> want = {
      {"mixtral", {0, 2}, "model.layers.0.block_sparse_moe", "model.layers.0.block_sparse_moe.experts.3.w1.weight",
       "model.layers.1.mlp.gate_proj.weight", ""},
      {"mistral", {}, "model.layers.0.mlp", "", "model.layers.1.mlp.gate_proj.weight", ""},
      {"qwen2_moe", {0, 2}, "model.layers.0.mlp", "model.layers.0.mlp.experts.3.gate_proj.weight",
       "model.layers.1.mlp.gate_proj.weight", ""},
      // per-head q/k norms: [head_dim] (8, not hidden_size / heads = 4)
      {"qwen3_moe", {0, 2}, "model.layers.0.mlp", "model.layers.0.mlp.experts.3.gate_proj.weight",
       "model.layers.1.mlp.gate_proj.weight", "model.layers.2.self_attn.q_norm.weight", 8},
      // q/k norms over the whole projection: [heads * head_dim]; every layer routed
      {"olmoe", {0, 1, 2}, "model.layers.0.mlp", "model.layers.1.mlp.experts.3.gate_proj.weight", "",
       "model.layers.0.self_attn.q_norm.weight", 16},
      // latent attention (no q_norm); the dense layer's name in dense1
      {"deepseek_v2", {1, 2}, "model.layers.0.mlp", "model.layers.1.mlp.experts.3.gate_proj.weight",
       "model.layers.0.mlp.gate_proj.weight", ""},
      {"deepseek_v3", {0, 2}, "model.layers.0.mlp", "model.layers.2.mlp.experts.3.gate_proj.weight",
       "model.layers.1.mlp.gate_proj.weight", ""},
  };
  ASSERT_EQ(want.size(), registered().size());
  for (const Want& w : want) {
    const ModelConfig c = ModelConfig::from_json(example(w.type), w.type);
    DecoderLM m(c);
    EXPECT_EQ(c.ffn_prefix(0), w.ffn0) << w.type;
    EXPECT_EQ(m.routed_layers(), w.routed) << w.type;
    for (int l = 0; l < 3; ++l) {
      const bool routed = std::find(w.routed.begin(), w.routed.end(), l) != w.routed.end();
      EXPECT_EQ(m.layers[l]->moe() != nullptr, routed) << w.type << " layer " << l;
      EXPECT_EQ(m.layers[l]->peer(), nullptr);
    }
    std::map<std::string, int64_t> names;
    int64_t count = 0;
    for (Param* p : m.params()) names[p->name] = p->w.numel(), count += p->w.numel();
    EXPECT_EQ(count, c.total_params()) << w.type;
    for (const std::string& n : {w.expert_gate, w.dense1}) {
      if (n.empty()) continue;
      EXPECT_TRUE(names.count(n)) << w.type << " " << n;
    }
    if (w.q_norm.empty()) {
      EXPECT_EQ(names.count("model.layers.0.self_attn.q_norm.weight"), 0u) << w.type;
    } else {
      ASSERT_TRUE(names.count(w.q_norm)) << w.type;
      EXPECT_EQ(names[w.q_norm], w.q_norm_size) << w.type;
    }
  }
}

// DeepSeek's published names and shapes: the latent attention's tensors, shared experts of width
// n_shared_experts * moe_intermediate_size, the V3 gate's correction bias.
TEST(Architecture, DeepSeekTensorNamesAndShapes) {
  for (const char* type : {"deepseek_v2", "deepseek_v3"}) {
    SCOPED_TRACE(type);
    const bool v3 = std::string(type) == "deepseek_v3";
    const ModelConfig c = ModelConfig::from_json(example(type), type);
    DecoderLM m(c);
    std::map<std::string, Shape> got;
    for (Param* p : m.params()) got[p->name] = p->w.shape();
    const std::string a = "model.layers.2.self_attn.", f = "model.layers.2.mlp.";
    if (v3) {
      EXPECT_EQ(got.at(a + "q_a_proj.weight"), (Shape{6, 16}));
      EXPECT_EQ(got.at(a + "q_a_layernorm.weight"), (Shape{6}));
      EXPECT_EQ(got.at(a + "q_b_proj.weight"), (Shape{4 * 6, 6}));
      EXPECT_EQ(got.count(a + "q_proj.weight"), 0u);
      EXPECT_EQ(got.at(f + "gate.e_score_correction_bias"), (Shape{4}));
      EXPECT_EQ(got.at(f + "shared_experts.gate_proj.weight"), (Shape{12, 16}));  // 1 shared (V3's default)
    } else {
      EXPECT_EQ(got.at(a + "q_proj.weight"), (Shape{4 * 6, 16}));
      EXPECT_EQ(got.count(f + "gate.e_score_correction_bias"), 0u);
      EXPECT_EQ(got.at(f + "shared_experts.gate_proj.weight"), (Shape{24, 16}));  // 2 x 12
    }
    EXPECT_EQ(got.at(a + "kv_a_proj_with_mqa.weight"), (Shape{6 + 2, 16}));
    EXPECT_EQ(got.at(a + "kv_a_layernorm.weight"), (Shape{6}));
    EXPECT_EQ(got.at(a + "kv_b_proj.weight"), (Shape{4 * (4 + 5), 6}));
    EXPECT_EQ(got.at(a + "o_proj.weight"), (Shape{16, 4 * 5}));
    EXPECT_EQ(got.at(f + "experts.3.down_proj.weight"), (Shape{16, 12}));
    // Training-only and multi-token-prediction keys are kept and written back.
    if (v3) EXPECT_EQ(c.to_json()["num_nextn_predict_layers"], 1);
    else EXPECT_EQ(c.to_json()["aux_loss_alpha"], 0.001);
    EXPECT_EQ(c.router, "deepseek");
  }
}

TEST(Architecture, PeerLayersReplaceTheArchitecturesFFN) {
  nlohmann::json j = example("mixtral");
  j["ffn_type"] = "peer", j["peer_layers"] = {2}, j["peer_num_experts"] = 16, j["peer_heads"] = 2;
  j["peer_top_k"] = 2, j["peer_key_dim"] = 8;
  const ModelConfig c = ModelConfig::from_json(j, "peer");
  DecoderLM m(c);
  EXPECT_EQ(c.ffn_prefix(2), "model.layers.2.peer");
  EXPECT_NE(m.layers[2]->peer(), nullptr);
  EXPECT_EQ(m.layers[2]->moe(), nullptr);
  EXPECT_NE(m.layers[0]->moe(), nullptr);
  EXPECT_EQ(m.peer_layers(), std::vector<int>{2});
}

TEST(Architecture, KeysThatChangeTheComputationAreErrorsNamingThem) {
  auto without = [](nlohmann::json j, const char* key) {
    j.erase(key);
    return j;
  };
  auto with = [](nlohmann::json j, const char* key, nlohmann::json v) {
    j[key] = v;
    return j;
  };
  const auto q3 = example("qwen3_moe"), ol = example("olmoe"), ds = example("deepseek_v2");
  const std::vector<std::pair<nlohmann::json, std::string>> cases = {
      {without(q3, "head_dim"), "cfg.json: missing required key 'head_dim'"},
      {without(q3, "num_experts"), "cfg.json: missing required key 'num_experts'"},
      {with(q3, "router", "switch"), "qwen3_moe routes with softmax top-k"},
      {with(ol, "clip_qkv", 8.0), "cfg.json: 'clip_qkv' = 8.0 changes the computation and is not implemented"},
      {with(ol, "router", "noisy_topk"), "olmoe routes with softmax top-k"},
      {with(ol, "num_experts", "8"), "cfg.json: key 'num_experts' must be an integer, got \"8\""},
      {without(ds, "kv_lora_rank"), "cfg.json: missing required key 'kv_lora_rank'"},
      {without(ds, "q_lora_rank"), "cfg.json: missing required key 'q_lora_rank' (null: a plain q_proj)"},
      {with(ds, "topk_method", "random"), "cfg.json: topk_method 'random' is not implemented"},
      {with(ds, "scoring_func", "softplus"), "cfg.json: scoring_func 'softplus' is not implemented"},
      {with(ds, "n_group", 3), "cfg.json: n_group 3 must divide n_routed_experts 4"},
      {with(ds, "rope_scaling", {{"type", "dynamic"}, {"factor", 2.0}}),
       "cfg.json: rope_scaling type \"dynamic\" is not implemented (supported: \"yarn\")"},
      {with(ds, "router", "topk_softmax"), "cfg.json: deepseek_v2 routes with DeepSeek's gate"},
      {with(ds, "attention_bias", true), "cfg.json: 'attention_bias' = true changes the computation and is not implemented"},
      {with(example("mixtral"), "router", "deepseek"), "cfg.json: router \"deepseek\" is DeepSeek's gate"},
      {with(example("mixtral"), "rope_scaling", {{"type", "yarn"}, {"factor", 2.0}}),
       "cfg.json: 'rope_scaling' = {\"factor\":2.0,\"type\":\"yarn\"} changes the computation and is not implemented"},
      {with(q3, "use_qk_norm", true), "'use_qk_norm' = true changes the computation"},
  };
  for (const auto& [j, want] : cases) {
    const std::string e = test::error_of([&] { ModelConfig::from_json(j, "cfg.json"); });
    EXPECT_NE(e.find(want), std::string::npos) << e << "\nwanted: " << want;
  }
}

}  // namespace
}  // namespace moe
