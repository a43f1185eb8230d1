// The optimizer state `moe train --resume` reads (trainer_state-<step>.safetensors): the
// safetensors layer, then the moments of a small model's parameters restored and checked
// (load_optimizer_state, as Trainer::resume calls it).
#include "core/error.h"
#include "fuzz_util.h"
#include "train/optimizer_state.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = moe::fuzz::write_input("trainer_state-7.safetensors", data, size);
  moe::Param a("a", moe::Shape{4, 3}), b("b", moe::Shape{5});
  moe::AdamW opt(moe::ParamList{&a, &b}, {});
  try {
    moe::load_optimizer_state(opt, {moe::SafetensorsFile::open(path)}, 7, moe::fuzz::scratch_dir());
    opt.step(1e-3f);  // a restored state is one an update can use
  } catch (const moe::Error&) {
  }
  return 0;
}
