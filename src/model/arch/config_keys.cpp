#include "model/arch/config_keys.h"

namespace moe {

void read_config_keys(const ConfigReader& r, ModelConfig& c, std::span<const ConfigKey> keys) {
  for (const ConfigKey& k : keys)
    std::visit(
        [&](auto field) {
          auto& out = c.*field;
          using T = std::decay_t<decltype(out)>;
          if constexpr (std::is_same_v<T, std::string>) {
            if (k.required && !r.has(k.name)) r.fail(std::string("missing required key '") + k.name + "'");
            r.str(k.name, out);
          } else if constexpr (std::is_same_v<T, std::vector<int>>) {
            if (k.required && !r.has(k.name)) r.fail(std::string("missing required key '") + k.name + "'");
            r.int_list(k.name, out);
          } else {
            r.num(k.name, out, k.required);
          }
        },
        k.field);
}

void write_config_keys(const ModelConfig& c, nlohmann::json& j, std::span<const ConfigKey> keys) {
  for (const ConfigKey& k : keys) std::visit([&](auto field) { j[k.name] = c.*field; }, k.field);
}

std::vector<std::string> config_key_names(std::span<const ConfigKey> keys, std::vector<std::string> extra) {
  std::vector<std::string> out;
  for (const ConfigKey& k : keys) out.push_back(k.name);
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

}  // namespace moe
