#pragma once
// A named trainable parameter: its value and the gradient that backward passes accumulate into.
#include <string>
#include <vector>

#include "core/tensor.h"

namespace moe {

struct Param {
  std::string name;  // checkpoint name, e.g. "model.layers.0.self_attn.q_proj.weight"
  Tensor w;
  Tensor g;           // same shape as w; accumulated (+=) by backward passes
  bool decay = true;  // weight decay applies (false for norms)
  // false: saved with the model but not updated by the optimizer (e.g. a router's load-balancing
  // bias, which has its own update rule).
  bool trainable = true;

  Param() = default;
  Param(std::string n, Shape s, bool wd = true) : name(std::move(n)), w(s), g(s), decay(wd) {}
};

using ParamList = std::vector<Param*>;

}  // namespace moe
