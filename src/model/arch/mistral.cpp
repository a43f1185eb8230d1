// Mistral (model_type "mistral"): the dense twin of Mixtral, a SwiGLU MLP of intermediate_size in
// "model.layers.{i}.mlp" (gate_proj / up_proj / down_proj) in every layer.
#include "model/arch/architecture.h"

namespace moe {
namespace {

class Mistral final : public Architecture {
 public:
  std::string model_type() const override { return "mistral"; }
  std::string hf_class() const override { return "MistralForCausalLM"; }
  bool has_experts() const override { return false; }
  std::vector<std::string> keys() const override { return {}; }
  void read(const ConfigReader&, ModelConfig& c) const override {
    c.num_local_experts = 0;
    c.num_experts_per_tok = 0;
    c.router_aux_loss_coef = 0;
  }
  void write(const ModelConfig&, nlohmann::json&) const override {}
};

}  // namespace

const Architecture& mistral_architecture() {
  static const Mistral a;
  return a;
}

}  // namespace moe
