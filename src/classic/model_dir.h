#pragma once
// A fitted classic mixture as a directory: config.json (the encoding of the data, the experts'
// kinds and options, the gate) and model.safetensors (every parameter as F32: "gate.coef",
// "experts.K.coef", "experts.K.variance"). Both written atomically, the weights first, so a crash
// leaves either the old model or the new one's weights beside the old config, which load refuses
// by shape or name rather than mixing.
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
