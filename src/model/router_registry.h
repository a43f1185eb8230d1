#pragma once
// The routers a model config can name ("router" key): name -> factory and gate parameter count.
// Adding a router is its file in src/moe/ plus one entry here; the config's validation, the model's
// layers and the parameter count all look it up.
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
};

const RouterKind* find_router(const std::string& name);  // nullptr: unknown
std::string router_names();                              // "topk_softmax, switch, ..."

}  // namespace moe
