#include "train/optimizer_state.h"

#include <cmath>

#include "core/error.h"

namespace moe {

void load_optimizer_state(AdamW& opt, const std::vector<SafetensorsFile>& files, int64_t step,
                          const std::string& dir) {
  const std::string where = "[train] " + dir + ": the optimizer state of step " + std::to_string(step);
  opt.load_state([&](const std::string& name, Tensor& dst) {
    const SafetensorsFile* file = nullptr;
    for (const SafetensorsFile& f : files)
      if (!file && f.has(name)) file = &f;
    if (!file) throw Error(where + " has no tensor '" + name + "'");
    file->read_into(name, dst.data(), dst.numel());
    const bool second = name.rfind("adam.v.", 0) == 0;
    for (int64_t i = 0; i < dst.numel(); ++i)
      if (!std::isfinite(dst[i]) || (second && dst[i] < 0))
        throw Error(where + ": tensor '" + name + "' holds " + std::to_string(dst[i]) + " at element " +
                    std::to_string(i) + (second ? " (second moments must be finite and >= 0)" : " (must be finite)"));
  }, step);
}

}  // namespace moe
