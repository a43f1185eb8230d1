// OLMoE (model_type "olmoe", e.g. OLMoE-1B-7B): every layer sparse, routed experts of width
// intermediate_size under "mlp" (experts.{e}.gate_proj / up_proj / down_proj, gate.weight), softmax
// top-k without renormalisation by default (norm_topk_prob false), and an RMSNorm over the whole q
// and k projections before RoPE ("self_attn.q_norm.weight" [H * head_dim], "k_norm" [H_kv *
// head_dim]). clip_qkv (clamping q, k, v) is not implemented and must be null.
#include "model/arch/architecture.h"
#include "model/arch/routing_keys.h"

namespace moe {
namespace {

class Olmoe final : public Architecture {
 public:
  std::string model_type() const override { return "olmoe"; }
  std::string hf_class() const override { return "OlmoeForCausalLM"; }
  bool has_experts() const override { return true; }
  std::vector<std::string> keys() const override {
    std::vector<std::string> k = routing_keys();
    k.insert(k.end(), {"num_experts", "clip_qkv"});
    return k;
  }
  void read(const ConfigReader& r, ModelConfig& c) const override {
    r.num("num_experts", c.num_local_experts, true);
    if (r.has("clip_qkv"))
      r.fail("'clip_qkv' = " + r.json()["clip_qkv"].dump() +
             " changes the computation and is not implemented (supported: null)");
    c.qk_norm = QKNorm::whole;
    read_routing_keys(r, c, /*norm_topk_prob_default=*/false);
  }
  void write(const ModelConfig& c, nlohmann::json& j) const override {
    write_hf_routing_keys(c, j);
    j["clip_qkv"] = nullptr;
  }
  void validate(const ModelConfig& c, const std::string& src) const override {
    require_topk_softmax(c, src);
    if (!c.mlp_only_layers.empty() || c.decoder_sparse_step != 1 || c.n_shared_experts > 0)
      throw Error("[config] " + src + ": olmoe has routed experts in every layer and no shared experts");
  }

 protected:
  std::string sparse_block_name() const override { return "mlp"; }
  ExpertNames expert_names() const override { return {.gate = "gate_proj", .up = "up_proj", .down = "down_proj"}; }
};

}  // namespace

const Architecture& olmoe_architecture() {
  static const Olmoe a;
  return a;
}

}  // namespace moe
