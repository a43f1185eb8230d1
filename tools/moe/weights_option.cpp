#include "weights_option.h"

namespace moe::cli {

void add_weights_option(CLI::App* cmd, std::string& value) {
  cmd->add_option("--weights", value,
                  "stored: bf16/f16 matrices stay as stored, memory-mapped, multiplied in bf16 (memory about "
                  "the file size); f32: widen every weight to f32 on load (f32 arithmetic, twice the memory)")
      ->capture_default_str()
      ->check(CLI::IsMember({"stored", "f32"}));
}

LoadOptions run_load_options(const std::string& weights) {
  return {.for_training = false, .keep_16bit = weights != "f32"};
}

}  // namespace moe::cli
