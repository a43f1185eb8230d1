#pragma once
// Hugging Face config keys that change what a model computes and that moe does not implement.
// A config that sets one to anything but its neutral value is refused with the key's name: a
// checkpoint loaded with such a key ignored would run, and be wrong.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace moe {

struct UnimplementedKey {
  const char* key;
  const char* neutral;  // the values that leave the computation unchanged, as text for errors
};

// The keys checked, for documentation and tests.
const std::vector<UnimplementedKey>& unimplemented_keys();

// moe::Error naming the first key of config j (from src) set to a value moe cannot honour. Keys the
// config's architecture reads itself (arch_keys, e.g. DeepSeek's rope_scaling) are its to check.
void reject_unimplemented_keys(const nlohmann::json& j, const std::string& src,
                               const std::vector<std::string>& arch_keys = {});

}  // namespace moe
