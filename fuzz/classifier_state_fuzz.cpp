// The training state `moe fit --resume` reads for an image classifier
// (trainer_state-<epoch>.safetensors, src/vision/classifier_state.h): the safetensors layer, its
// metadata (format, epoch, step, seconds, the settings as JSON, the data fingerprint), then the
// moments of a small model's parameters restored and checked, and one update made with them.
#include "core/error.h"
#include "fuzz_util.h"
#include "vision/classifier_state.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moe::fuzz::write_input("trainer_state-3.safetensors", data, size);
  moe::Param a("a", moe::Shape{4, 3}), b("b", moe::Shape{5});
  moe::AdamW opt(moe::ParamList{&a, &b}, {});
  try {
    moe::vision::load_classifier_state(moe::fuzz::scratch_dir(), 3, opt);
    opt.step(1e-3f);
  } catch (const moe::Error&) {
  }
  return 0;
}
