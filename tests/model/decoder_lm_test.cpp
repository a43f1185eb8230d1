// The whole decoder (every architecture) against finite differences of its objective
// (mean NLL + weighted router losses), for sampled entries of every parameter.
#include "model/decoder_lm.h"

#include <set>

#include <gtest/gtest.h>

#include "../test_util.h"

namespace moe {
namespace {

ModelConfig tiny(bool moe) {
  ModelConfig c = test::tiny_moe_config();
  c.model_type = moe ? "mixtral" : "mistral";
  c.max_position_embeddings = 16;
  c.num_local_experts = moe ? 4 : 0;
  c.num_experts_per_tok = moe ? 2 : 0;
  c.router_aux_loss_coef = moe ? 0.5f : 0.0f;  // large, so its gradient is visible
  c.router_z_loss_coef = moe ? 0.1f : 0.0f;
  return c;
}

void check_model_grads(bool moe, bool tied, const std::string& router = "topk_softmax", int shared = 0,
                       const ModelConfig* given = nullptr) {
  ModelConfig c = given ? *given : tiny(moe);
  if (!given) {
    c.tie_word_embeddings = tied;
    c.router = router;
    c.n_shared_experts = shared;
  }
  if (router == "expert_choice") c.router_aux_loss_coef = 0;
  DecoderLM m(c);
  m.init_weights(5, 0.3f);
  const int64_t B = 2, T = 6;
  Rng rng(9);
  std::vector<int32_t> tok(B * T), tgt(B * T);
  for (auto& t : tok) t = int32_t(rng.below(256));
  for (int64_t i = 0; i < B * T; ++i) tgt[i] = (i % T == T - 1) ? -1 : tok[i + 1];
  auto routes = [&] {
    std::vector<int32_t> all;
    for (auto* p : m.routing()) all.insert(all.end(), p->expert.begin(), p->expert.end());
    return all;
  };
  auto loss = [&] { return m.forward(tok.data(), tgt.data(), B, T).objective(); };
  m.zero_grad();
  loss();
  const auto sel = routes();
  m.backward();
  const float eps = 1e-2f;
  int checked = 0;
  for (Param* p : m.params()) {
    if (!p->trainable) continue;
    for (int i = 0; i < 4; ++i) {
      const int64_t j = int64_t(rng.below(p->w.numel()));
      // skip entries whose perturbation flips a routing decision
      const auto [num, smooth] = test::finite_diff_where_smooth(&p->w[j], loss, [&] { return routes() == sel; }, eps);
      if (!smooth) continue;
      ++checked;
      // float32 forward: the loss is ~5.5 with rounding ~1e-6, divided by 2e-2 -> ~1e-4 noise.
      EXPECT_TRUE(test::close(p->g[j], num, 3e-2, 3e-4)) << p->name << "[" << j << "] analytic " << p->g[j] << " numeric " << num;
    }
  }
  EXPECT_GT(checked, int(m.params().size()) * 2);
}

TEST(DecoderLM, MixtralGradientsMatchFiniteDifferences) { check_model_grads(true, false); }
TEST(DecoderLM, MistralDenseGradientsMatchFiniteDifferences) { check_model_grads(false, false); }
TEST(DecoderLM, TiedEmbeddingsGradients) { check_model_grads(true, true); }
TEST(DecoderLM, SigmoidBiasRouterWithSharedExpertGradients) { check_model_grads(true, false, "sigmoid_bias", 1); }
TEST(DecoderLM, ExpertChoiceGradients) { check_model_grads(true, false, "expert_choice"); }
TEST(DecoderLM, NoisyTopKGradients) { check_model_grads(true, false, "noisy_topk"); }

TEST(DecoderLM, Qwen2MoeGradientsAndNames) {
  // Qwen2-MoE: q/k/v biases, a sigmoid-gated shared expert, a dense layer among sparse ones.
  nlohmann::json j = {{"model_type", "qwen2_moe"}, {"vocab_size", 256}, {"hidden_size", 16}, {"intermediate_size", 20},
                      {"moe_intermediate_size", 12}, {"shared_expert_intermediate_size", 16}, {"num_hidden_layers", 2},
                      {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"num_experts", 4},
                      {"num_experts_per_tok", 2}, {"mlp_only_layers", {1}}, {"max_position_embeddings", 16},
                      {"router_aux_loss_coef", 0.5}};
  ModelConfig c = ModelConfig::from_json(j, "qwen");
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_TRUE(c.sparse_layer(0));
  EXPECT_FALSE(c.sparse_layer(1));
  DecoderLM m(c);
  std::set<std::string> names;
  int64_t count = 0;
  for (Param* p : m.params()) names.insert(p->name), count += p->w.numel();
  EXPECT_EQ(count, c.total_params());
  for (const char* n : {"model.layers.0.self_attn.q_proj.bias", "model.layers.0.mlp.gate.weight",
                        "model.layers.0.mlp.experts.3.down_proj.weight", "model.layers.0.mlp.shared_expert.up_proj.weight",
                        "model.layers.0.mlp.shared_expert_gate.weight", "model.layers.1.mlp.gate_proj.weight"})
    EXPECT_TRUE(names.count(n)) << n;
  EXPECT_EQ(c.to_json()["num_experts"], 4);
  EXPECT_EQ(c.to_json()["moe_intermediate_size"], 12);
  EXPECT_EQ(c.to_json()["intermediate_size"], 20);
  EXPECT_EQ(ModelConfig::from_json(c.to_json(), "x").to_json(), c.to_json());
  check_model_grads(true, false, "", 0, &c);
}

// Qwen3-MoE (per-head q/k norms, head_dim 8 != hidden / heads, a dense layer) and OLMoE (q/k norms
// over the whole projections, every layer routed): the whole model against finite differences.
TEST(DecoderLM, Qwen3MoeAndOlmoeGradients) {
  const nlohmann::json common = {{"vocab_size", 256}, {"hidden_size", 16}, {"intermediate_size", 20},
                                 {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
                                 {"num_experts", 4}, {"num_experts_per_tok", 2}, {"max_position_embeddings", 16},
                                 {"router_aux_loss_coef", 0.5}};
  nlohmann::json q3 = common, ol = common;
  q3.update({{"model_type", "qwen3_moe"}, {"moe_intermediate_size", 12}, {"head_dim", 8}, {"mlp_only_layers", {1}},
             {"norm_topk_prob", true}});
  ol.update({{"model_type", "olmoe"}});
  for (const auto& j : {q3, ol}) {
    SCOPED_TRACE(j["model_type"].get<std::string>());
    const ModelConfig c = ModelConfig::from_json(j, "test");
    ASSERT_NE(c.qk_norm, QKNorm::none);
    check_model_grads(true, false, "", 0, &c);
  }
}

// DeepSeek-V2 (latent attention without the q low rank, group-limited softmax gate, V2 scaling,
// shared experts, a dense first layer) and V3 (q low rank, YaRN, noaux_tc sigmoid gate with its bias).
TEST(DecoderLM, DeepSeekGradients) {
  const nlohmann::json common = {{"vocab_size", 256}, {"hidden_size", 16}, {"intermediate_size", 20},
                                 {"num_hidden_layers", 2}, {"num_attention_heads", 2}, {"n_routed_experts", 4},
                                 {"num_experts_per_tok", 2}, {"max_position_embeddings", 16},
                                 {"moe_intermediate_size", 8}, {"n_group", 2}, {"topk_group", 1},
                                 {"kv_lora_rank", 6}, {"qk_nope_head_dim", 4}, {"qk_rope_head_dim", 4},
                                 {"v_head_dim", 6}, {"router_aux_loss_coef", 0.5}};
  nlohmann::json v2 = common, v3 = common;
  v2.update({{"model_type", "deepseek_v2"}, {"q_lora_rank", nullptr}, {"topk_method", "group_limited_greedy"},
             {"n_shared_experts", 1}, {"first_k_dense_replace", 1}, {"routed_scaling_factor", 1.5}});
  v3.update({{"model_type", "deepseek_v3"}, {"q_lora_rank", 5}, {"first_k_dense_replace", 0},
             {"rope_scaling", {{"type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 4},
                               {"mscale", 1.0}, {"mscale_all_dim", 0.8}}}});
  for (const auto& j : {v2, v3}) {
    SCOPED_TRACE(j["model_type"].get<std::string>());
    const ModelConfig c = ModelConfig::from_json(j, "test");
    check_model_grads(true, false, "", 0, &c);
  }
}

TEST(DecoderLM, GridRouterGradientsMatchFiniteDifferences) {
  ModelConfig c = tiny(true);
  c.router = "grid";
  c.expert_grid = {2, 2};
  c.router_z_loss_coef = 0;
  check_model_grads(true, false, "grid", 0, &c);
}

TEST(DecoderLM, ParameterCountsMatchConfigForEveryRouter) {
  for (const char* r : {"topk_softmax", "switch", "noisy_topk", "sigmoid_bias", "expert_choice", "grid"}) {
    ModelConfig c = tiny(true);
    c.router = r;
    if (c.router == "switch") c.num_experts_per_tok = 1, c.norm_topk_prob = false;
    if (c.router == "noisy_topk") c.num_experts_per_tok = 1;
    if (c.router == "grid") c.expert_grid = {2, 2};
    DecoderLM m(c);
    int64_t n = 0;
    for (Param* p : m.params()) n += p->w.numel();
    EXPECT_EQ(n, c.total_params()) << r;
  }
}

TEST(DecoderLM, ParameterCountsMatchConfig) {
  for (bool moe : {true, false}) {
    ModelConfig c = tiny(moe);
    DecoderLM m(c);
    int64_t n = 0;
    for (Param* p : m.params()) n += p->w.numel();
    EXPECT_EQ(n, c.total_params());
    if (moe) EXPECT_EQ(c.total_params() - c.active_params(), 2LL * (4 - 2) * 3 * 16 * 24);
    else EXPECT_EQ(c.total_params(), c.active_params());
  }
}

TEST(DecoderLM, CausalLogitsDoNotSeeTheFuture) {
  ModelConfig c = tiny(true);
  DecoderLM m(c);
  m.init_weights(1, 0.3f);
  std::vector<int32_t> a = {1, 2, 3, 4, 5, 6}, b = {1, 2, 3, 9, 9, 9}, tgt(6, -1);
  m.forward(a.data(), tgt.data(), 1, 6);
  Tensor la = m.logits();
  m.forward(b.data(), tgt.data(), 1, 6);
  for (int64_t i = 0; i < 3 * 256; ++i) EXPECT_NEAR(la[i], m.logits()[i], 1e-5);
}

}  // namespace
}  // namespace moe
