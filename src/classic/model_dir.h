#pragma once
// A fitted classic mixture as a directory: config.json (the encoding of the data, the experts'
// kinds and options, the gate) and model.safetensors (every parameter as F32: "gate.coef",
// "experts.K.coef", "experts.K.variance"). Both written atomically, the weights first; both carry
// the same fit id, so a crash between the two writes (new weights, old config) is refused at load
// rather than mixed.
#include <memory>
#include <string>

#include "classic/mixture.h"
#include "classic/tabular.h"

namespace moe::classic {

struct ClassicModel {
  TabularEncoding encoding;
  std::unique_ptr<Mixture> mixture;
};

void save_classic_model(const std::string& dir, const ClassicModel& model);
// moe::Error naming the file and what is wrong (not a classic mixture, a missing tensor, a shape).
ClassicModel load_classic_model(const std::string& dir);

}  // namespace moe::classic
