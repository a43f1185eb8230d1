// train_config.json as --resume reads it: parsing, every key's type and range, then the checks
// the trainer applies before a run.
#include "core/error.h"
#include "fuzz_util.h"
#include "train/train_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = moe::fuzz::write_input("train_config.json", data, size);
  try {
    moe::TrainConfig c = moe::TrainConfig::load(path);
    c.out_dir = "out";
    c.check();
    c.to_json().dump();
  } catch (const moe::Error&) {
  }
  return 0;
}
