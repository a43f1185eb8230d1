// DeepSeek-V2 and DeepSeek-V3 (model_type "deepseek_v2", "deepseek_v3"): multi-head latent
// attention (nn/mla_attention.h) with YaRN rope_scaling, dense layers below first_k_dense_replace
// and off moe_layer_freq, routed experts plus n_shared_experts always-on ones in one SwiGLU of
// width n_shared_experts * moe_intermediate_size, and DeepSeek's gate (moe/router_deepseek.h:
// topk_method greedy | group_limited_greedy | noaux_tc, scoring_func softmax | sigmoid).
// Tensors: "model.layers.{i}.self_attn.{q_proj | q_a_proj, q_a_layernorm, q_b_proj,
// kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj, o_proj}", "mlp.gate.weight" (and
// "mlp.gate.e_score_correction_bias" with noaux_tc), "mlp.experts.{e}.gate_proj / up_proj /
// down_proj", "mlp.shared_experts.*", dense "mlp.gate_proj / up_proj / down_proj".
// The two versions differ in their defaults and in routed_scaling_factor: V2 scales only weights
// it does not renormalise, V3 scales them always. Training-only keys (aux_loss_alpha, seq_aux)
// and V3's multi-token-prediction module (num_nextn_predict_layers, not part of the forward) are
// kept and written back; training here uses this project's router_aux_loss_coef.
#include "model/arch/architecture.h"
#include "model/arch/config_keys.h"
#include "nn/mla_attention.h"

namespace moe {
namespace {

// The keys read and written as they are; q_lora_rank, rope_scaling, ep_size, router,
// router_aux_loss_coef and bias_update_speed have rules of their own (below).
constexpr ConfigKey kKeys[] = {
    {"n_routed_experts", &ModelConfig::num_local_experts, true},
    {"moe_intermediate_size", &ModelConfig::intermediate_size, true},
    {"n_shared_experts", &ModelConfig::n_shared_experts},
    {"first_k_dense_replace", &ModelConfig::first_k_dense_replace},
    {"moe_layer_freq", &ModelConfig::moe_layer_freq},
    {"num_experts_per_tok", &ModelConfig::num_experts_per_tok, true},
    {"norm_topk_prob", &ModelConfig::norm_topk_prob},
    {"routed_scaling_factor", &ModelConfig::routed_scaling_factor},
    {"topk_method", &ModelConfig::topk_method},
    {"n_group", &ModelConfig::n_group},
    {"topk_group", &ModelConfig::topk_group},
    {"scoring_func", &ModelConfig::scoring_func},
    {"kv_lora_rank", &ModelConfig::kv_lora_rank, true},
    {"qk_nope_head_dim", &ModelConfig::qk_nope_head_dim, true},
    {"qk_rope_head_dim", &ModelConfig::qk_rope_head_dim, true},
    {"v_head_dim", &ModelConfig::v_head_dim, true},
};

class DeepSeek final : public Architecture {
 public:
  explicit DeepSeek(int version) : v_(version) {}
  std::string model_type() const override { return v_ == 2 ? "deepseek_v2" : "deepseek_v3"; }
  std::string hf_class() const override { return v_ == 2 ? "DeepseekV2ForCausalLM" : "DeepseekV3ForCausalLM"; }
  bool has_experts() const override { return true; }
  std::vector<std::string> keys() const override {
    return config_key_names(kKeys, {"q_lora_rank", "rope_scaling", "ep_size", "router_aux_loss_coef", "bias_update_speed", "router"});
  }
  void read(const ConfigReader& r, ModelConfig& c) const override {
    // Hugging Face's defaults for the keys a config may leave out.
    c.router = "deepseek";
    c.router_aux_loss_coef = 0.0f;
    c.topk_method = v_ == 2 ? "greedy" : "noaux_tc";
    c.scoring_func = v_ == 2 ? "softmax" : "sigmoid";
    c.norm_topk_prob = v_ == 3;
    c.routed_scaling_factor = v_ == 2 ? 1.0f : 2.5f;
    c.scale_normalized_weights = v_ == 3;
    c.n_group = v_ == 2 ? 1 : 8;
    c.topk_group = v_ == 2 ? 1 : 4;
    c.n_shared_experts = v_ == 2 ? 0 : 1;
    read_config_keys(r, c, kKeys);
    if (c.topk_method == "gready") c.topk_method = "greedy";  // DeepSeek-V2's config default spells it so
    r.str("router", c.router);  // only "deepseek" passes validate()
    r.num("router_aux_loss_coef", c.router_aux_loss_coef);
    r.num("bias_update_speed", c.bias_update_speed);
    // The latent attention's sizes: every published config states them.
    if (!r.json().contains("q_lora_rank")) r.fail("missing required key 'q_lora_rank' (null: a plain q_proj)");
    r.num("q_lora_rank", c.q_lora_rank);
    if (r.json().contains("rope_scaling")) c.rope_scaling = RopeScaling::from_json(r.json()["rope_scaling"], r.source());
    if (r.has("ep_size") && !r.json()["ep_size"].is_number_integer()) r.fail("key 'ep_size' must be an integer");
  }
  void write(const ModelConfig& c, nlohmann::json& j) const override {
    write_config_keys(c, j, kKeys);
    j["intermediate_size"] = c.dense_intermediate_size;  // the dense layers' (a common key, read as such)
    j["q_lora_rank"] = c.q_lora_rank > 0 ? nlohmann::json(c.q_lora_rank) : nlohmann::json(nullptr);
    j["rope_scaling"] = c.rope_scaling.to_json();
    if (c.router_aux_loss_coef > 0) j["router_aux_loss_coef"] = c.router_aux_loss_coef;
    if (c.topk_method == "noaux_tc") j["bias_update_speed"] = c.bias_update_speed;
  }
  void validate(const ModelConfig& c, const std::string& src) const override {
    auto bad = [&](const std::string& what) { throw Error("[config] " + src + ": " + what); };
    if (c.router != "deepseek") bad(model_type() + " routes with DeepSeek's gate; the router key is not supported");
    if (c.topk_method != "greedy" && c.topk_method != "group_limited_greedy" && c.topk_method != "noaux_tc")
      bad("topk_method '" + c.topk_method + "' is not implemented (supported: greedy, group_limited_greedy, noaux_tc)");
    if (c.scoring_func != "softmax" && c.scoring_func != "sigmoid")
      bad("scoring_func '" + c.scoring_func + "' is not implemented (supported: softmax, sigmoid)");
    if (c.moe_layer_freq < 1) bad("moe_layer_freq must be >= 1");
    if (c.first_k_dense_replace < 0) bad("first_k_dense_replace must be >= 0");
    if (c.n_shared_experts < 0) bad("n_shared_experts must be >= 0");
    if (c.topk_method != "greedy") {
      if (c.n_group < 1 || c.num_local_experts % c.n_group)
        bad("n_group " + std::to_string(c.n_group) + " must divide n_routed_experts " +
            std::to_string(c.num_local_experts));
      if (c.topk_group < 1 || c.topk_group > c.n_group)
        bad("topk_group " + std::to_string(c.topk_group) + " must be in [1, n_group]");
      if (c.topk_group * (c.num_local_experts / c.n_group) < c.num_experts_per_tok)
        bad("the topk_group eligible groups hold fewer experts than num_experts_per_tok");
      if (c.topk_method == "noaux_tc" && c.num_local_experts / c.n_group < 2)
        bad("noaux_tc scores each group by its two best experts: n_routed_experts / n_group must be >= 2");
    }
    if (c.kv_lora_rank < 1) bad("kv_lora_rank must be >= 1");
    if (c.q_lora_rank < 0) bad("q_lora_rank must be null or >= 1");
    if (c.qk_rope_head_dim < 2 || c.qk_rope_head_dim % 2) bad("qk_rope_head_dim must be even and >= 2");
    if (c.qk_nope_head_dim < 0) bad("qk_nope_head_dim must be >= 0");
    if (c.v_head_dim < 1) bad("v_head_dim must be >= 1");
  }
  std::unique_ptr<SelfAttention> make_attention(const ModelConfig& c, int i) const override {
    return std::make_unique<MLAttention>(
        "model.layers." + std::to_string(i) + ".self_attn",
        MLAConfig{.d_model = c.hidden_size, .n_heads = c.num_attention_heads, .q_lora_rank = c.q_lora_rank,
                  .kv_lora_rank = c.kv_lora_rank, .qk_nope_head_dim = c.qk_nope_head_dim,
                  .qk_rope_head_dim = c.qk_rope_head_dim, .v_head_dim = c.v_head_dim, .rope_theta = c.rope_theta,
                  .rope_scaling = c.rope_scaling,
                  // DeepSeek builds q_a_layernorm and kv_a_layernorm with RMSNorm's default eps,
                  // not rms_norm_eps (equal in the published configs).
                  .norm_eps = 1e-6f});
  }

 protected:
  std::string sparse_block_name() const override { return "mlp"; }
  ExpertNames expert_names() const override { return {.gate = "gate_proj", .up = "up_proj", .down = "down_proj"}; }
  std::string shared_expert_name() const override { return "shared_experts"; }

 private:
  int v_;
};

}  // namespace

const Architecture& deepseek_v2_architecture() {
  static const DeepSeek a(2);
  return a;
}

const Architecture& deepseek_v3_architecture() {
  static const DeepSeek a(3);
  return a;
}

}  // namespace moe
