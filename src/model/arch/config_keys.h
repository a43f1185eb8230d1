#pragma once
// A config.json key bound to the ModelConfig field it sets. An architecture lists its plain keys
// once, and that one list gives the names it declares (Architecture::keys), what read() sets and
// what write() writes back, so the three cannot drift apart. Keys with a rule of their own (null
// meaning something, an object, a conditional write) stay written out in the architecture.
#include <span>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/arch/config_reader.h"
#include "model/config.h"

namespace moe {

struct ConfigKey {
  using Field = std::variant<int ModelConfig::*, float ModelConfig::*, bool ModelConfig::*,
                             std::string ModelConfig::*, std::vector<int> ModelConfig::*>;
  const char* name;
  Field field;
  bool required = false;  // absent or null: an error naming the key
};

// Sets each key's field when the key is present (type-checked by ConfigReader).
void read_config_keys(const ConfigReader& r, ModelConfig& c, std::span<const ConfigKey> keys);
// Writes each key's field under its name.
void write_config_keys(const ModelConfig& c, nlohmann::json& j, std::span<const ConfigKey> keys);
// The keys' names followed by extra (the keys an architecture handles itself).
std::vector<std::string> config_key_names(std::span<const ConfigKey> keys, std::vector<std::string> extra = {});

}  // namespace moe
