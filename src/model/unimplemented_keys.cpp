#include "model/unimplemented_keys.h"

#include <algorithm>
#include <functional>

#include "core/error.h"

namespace moe {
namespace {

using json = nlohmann::json;

bool is_null_or(const json& v, const std::function<bool(const json&)>& ok) { return v.is_null() || ok(v); }
bool is_false(const json& v) { return v.is_boolean() && !v.get<bool>(); }
bool is_number(const json& v, double x) { return v.is_number() && v.get<double>() == x; }

struct Rule {
  UnimplementedKey key;
  std::function<bool(const json& value, const json& config)> neutral;
};

const std::vector<Rule>& rules() {
  static const std::vector<Rule> r = {
      // Mistral-style local attention. A window that covers every position changes nothing, nor
      // does one the Qwen families switch off (use_sliding_window false).
      {{"sliding_window", "null, >= max_position_embeddings, or with use_sliding_window false"},
       [](const json& v, const json& c) {
         if (c.contains("use_sliding_window") && is_false(c["use_sliding_window"])) return true;
         return is_null_or(v, [&](const json& w) {
           return w.is_number_integer() && c.contains("max_position_embeddings") &&
                  c["max_position_embeddings"].is_number_integer() &&
                  w.get<int64_t>() >= c["max_position_embeddings"].get<int64_t>();
         });
       }},
      {{"use_sliding_window", "false"}, [](const json& v, const json&) { return is_null_or(v, is_false); }},
      {{"layer_types", "every entry \"full_attention\""},
       [](const json& v, const json&) {
         return is_null_or(v, [](const json& a) {
           if (!a.is_array()) return false;
           for (const auto& t : a)
             if (t != "full_attention") return false;
           return true;
         });
       }},
      // Rotary variants: YaRN, linear, dynamic NTK, llama3 scaling; rotating part of a head.
      {{"rope_scaling", "null"}, [](const json& v, const json&) { return v.is_null(); }},
      {{"partial_rotary_factor", "1"}, [](const json& v, const json&) { return is_null_or(v, [](const json& x) { return is_number(x, 1); }); }},
      // Biases the byte-level architectures do not have (qwen2_moe's q/k/v bias is built in).
      {{"attention_bias", "false"}, [](const json& v, const json&) { return is_null_or(v, is_false); }},
      {{"mlp_bias", "false"}, [](const json& v, const json&) { return is_null_or(v, is_false); }},
      // Training-time noise and dropout.
      {{"router_jitter_noise", "0"}, [](const json& v, const json&) { return is_null_or(v, [](const json& x) { return is_number(x, 0); }); }},
      {{"attention_dropout", "0"}, [](const json& v, const json&) { return is_null_or(v, [](const json& x) { return is_number(x, 0); }); }},
      {{"hidden_dropout", "0"}, [](const json& v, const json&) { return is_null_or(v, [](const json& x) { return is_number(x, 0); }); }},
      // Llama's tensor-parallel emulation of pretraining, which changes rounding and results.
      {{"pretraining_tp", "1"}, [](const json& v, const json&) { return is_null_or(v, [](const json& x) { return is_number(x, 1); }); }},
      // Switches for q/k normalisation in other families (Cohere, StableLM); Qwen3-MoE's and
      // OLMoE's norms are part of their architectures (model/arch/).
      {{"qk_layernorm", "false"}, [](const json& v, const json&) { return is_null_or(v, is_false); }},
      {{"use_qk_norm", "false"}, [](const json& v, const json&) { return is_null_or(v, is_false); }},
      // Logit soft-capping (Gemma 2, Grok).
      {{"final_logit_softcapping", "null"}, [](const json& v, const json&) { return v.is_null(); }},
      {{"attn_logit_softcapping", "null"}, [](const json& v, const json&) { return v.is_null(); }},
      // Quantized weights.
      {{"quantization_config", "absent"}, [](const json&, const json&) { return false; }},
  };
  return r;
}

}  // namespace

const std::vector<UnimplementedKey>& unimplemented_keys() {
  static const std::vector<UnimplementedKey> keys = [] {
    std::vector<UnimplementedKey> k;
    for (const auto& r : rules()) k.push_back(r.key);
    return k;
  }();
  return keys;
}

void reject_unimplemented_keys(const json& j, const std::string& src, const std::vector<std::string>& arch_keys) {
  for (const auto& r : rules()) {
    if (!j.contains(r.key.key) || r.neutral(j[r.key.key], j)) continue;
    if (std::find(arch_keys.begin(), arch_keys.end(), r.key.key) != arch_keys.end()) continue;
    throw Error("[config] " + src + ": '" + r.key.key + "' = " + j[r.key.key].dump() +
                " changes the computation and is not implemented (supported: " + r.key.neutral + ")");
  }
}

}  // namespace moe
