// The sharded checkpoint index (model.safetensors.index.json) beside two valid shards: every
// tensor the index names is read through the weight store.
#include <filesystem>

#include "core/error.h"
#include "core/tensor.h"
#include "fuzz_util.h"
#include "io/safetensors.h"
#include "io/weight_store.h"

namespace {

void write_shards(const std::string& dir) {
  moe::Tensor a({2, 3}), b({4});
  for (int i = 0; i < 6; ++i) a.data()[i] = float(i);
  for (int i = 0; i < 4; ++i) b.data()[i] = -float(i);
  moe::write_safetensors(dir + "/model-00001-of-00002.safetensors", {{"model.embed_tokens.weight", &a}});
  moe::write_safetensors(dir + "/model-00002-of-00002.safetensors", {{"model.norm.weight", &b}});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool ready = (write_shards(moe::fuzz::scratch_dir()), true);
  (void)ready;
  moe::fuzz::write_input("model.safetensors.index.json", data, size);
  try {
    const moe::WeightStore s = moe::WeightStore::open(moe::fuzz::scratch_dir());
    for (const std::string& n : s.names()) s.read(n);
  } catch (const moe::Error&) {
  }
  return 0;
}
