#pragma once
// The routers a model config can name ("router" key): name -> factory, gate parameter count, and
// its own config keys (defaults, writing, checks). Adding a router is its file in src/moe/ plus one
// entry in router_registry.cpp; the config's reading, writing and validation, the model's layers
// and the parameter count all look it up.
#include <memory>
#include <string>

#include "model/config.h"
#include "moe/router.h"

namespace moe {

struct RouterKind {
  std::string name;
  // The router of MoE layer `layer`; param: its gate's tensor name ("...gate.weight").
  std::unique_ptr<Router> (*make)(const ModelConfig& c, const std::string& param, int layer);
  // Parameters of one layer's router.
  int64_t (*params)(const ModelConfig& c);
  // Defaults it sets before the config's keys are read (switch: capacity 1.25, no renormalising).
  void (*defaults)(ModelConfig& c);
  // Its own keys, written back to config.json, and their checks (moe::Error "[config] src: ...").
  void (*write)(const ModelConfig& c, nlohmann::json& j);
  void (*validate)(const ModelConfig& c, const std::string& src);
};

const RouterKind* find_router(const std::string& name);  // nullptr: unknown
std::string router_names();                              // "topk_softmax, switch, ..."

}  // namespace moe
