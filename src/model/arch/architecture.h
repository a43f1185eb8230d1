#pragma once
// A model architecture, named by config.json's "model_type": the keys it reads, the names of its
// tensors and what its decoder blocks are made of. Adding an architecture is a file here (a class
// deriving from Architecture), its line in registry.cpp and its test; config.cpp and the decoder
// block ask the registry and never test a model_type themselves.
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dist/communicator.h"
#include "model/arch/config_reader.h"
#include "model/config.h"
#include "nn/ffn.h"
#include "nn/self_attention.h"

namespace moe {

// The tensor names of one routed expert: "<prefix>.experts.<e>.<gate|up|down>.weight".
struct ExpertNames {
  const char* gate = "w1";
  const char* up = "w3";
  const char* down = "w2";
};

class Architecture {
 public:
  virtual ~Architecture() = default;
  virtual std::string model_type() const = 0;
  virtual std::string hf_class() const = 0;  // config.json "architectures": e.g. "MixtralForCausalLM"
  virtual bool has_experts() const = 0;      // routed-expert layers (else a dense model)

  // config.json keys read beyond the common ones (ModelConfig::from_json); every other key is kept
  // as unknown and written back unchanged. Plain keys can come from one ConfigKey table
  // (config_keys.h) that keys(), read() and write() share, as deepseek.cpp's do.
  virtual std::vector<std::string> keys() const = 0;
  // Sets c's fields from this architecture's keys; the common ones are already read.
  virtual void read(const ConfigReader& r, ModelConfig& c) const = 0;
  // Adds this architecture's keys to j (the common ones are already there).
  virtual void write(const ModelConfig& c, nlohmann::json& j) const = 0;
  // Checks that go beyond the common ones; throws moe::Error naming src and the key.
  virtual void validate(const ModelConfig&, const std::string&) const {}

  // Layer i's attention under "model.layers.<i>.self_attn": grouped-query attention (nn/attention.h)
  // unless the architecture builds another kind.
  virtual std::unique_ptr<SelfAttention> make_attention(const ModelConfig& c, int layer) const;
  // Tensor-name prefix of layer i's FFN, e.g. "model.layers.3.block_sparse_moe".
  std::string ffn_prefix(const ModelConfig& c, int layer) const;
  // Layer i's FFN: a PEER layer (the PEER extension keys), routed experts (sparse_layer), or a
  // dense SwiGLU MLP. With layout.expert_parallel R > 1 the routed experts are this rank's E / R.
  std::unique_ptr<FFN> make_ffn(const ModelConfig& c, int layer, const dist::ParallelLayout& layout) const;

 protected:
  // Block composition and names; the defaults are Mixtral's.
  virtual std::string sparse_block_name() const { return "block_sparse_moe"; }  // routed layers' FFN
  virtual ExpertNames expert_names() const { return {}; }
  virtual std::string shared_expert_name() const { return "shared_experts"; }
};

const Architecture* find_architecture(const std::string& model_type);  // nullptr: unknown
// The architecture of c; throws moe::Error "[config] src: unsupported model_type ..." when unknown.
const Architecture& architecture_of(const ModelConfig& c, const std::string& src = "config");
std::string architecture_names();  // "mixtral, mistral, qwen2_moe, ..."

}  // namespace moe
