// The architectures config.json's "model_type" can name. Adding one: its file in this folder, which
// defines <name>_architecture(), and its line below.
#include "model/arch/architecture.h"

namespace moe {

const Architecture& mixtral_architecture();
const Architecture& mistral_architecture();
const Architecture& qwen2_moe_architecture();
const Architecture& qwen3_moe_architecture();
const Architecture& olmoe_architecture();
const Architecture& deepseek_v2_architecture();
const Architecture& deepseek_v3_architecture();

namespace {
const std::vector<const Architecture*>& registry() {
  static const std::vector<const Architecture*> r = {&mixtral_architecture(), &mistral_architecture(),
                                                     &qwen2_moe_architecture(), &qwen3_moe_architecture(),
                                                     &olmoe_architecture(), &deepseek_v2_architecture(),
                                                     &deepseek_v3_architecture()};
  return r;
}
}  // namespace

const Architecture* find_architecture(const std::string& model_type) {
  for (const Architecture* a : registry())
    if (a->model_type() == model_type) return a;
  return nullptr;
}

const Architecture& architecture_of(const ModelConfig& c, const std::string& src) {
  const Architecture* a = find_architecture(c.model_type);
  if (!a)
    throw Error("[config] " + src + ": unsupported model_type '" + c.model_type + "' (supported: " +
                architecture_names() + ")");
  return *a;
}

std::string architecture_names() {
  std::string s;
  for (const Architecture* a : registry()) s += (s.empty() ? "" : ", ") + a->model_type();
  return s;
}

}  // namespace moe
