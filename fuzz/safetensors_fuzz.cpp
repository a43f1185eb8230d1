// The safetensors reader: header validation, then every tensor read and converted to f32. Any
// input may be rejected with moe::Error; nothing else may escape, crash, leak or hang.
#include "core/error.h"
#include "fuzz_util.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = moe::fuzz::write_input("model.safetensors", data, size);
  try {
    const moe::SafetensorsFile f = moe::SafetensorsFile::open(path);
    for (const moe::TensorInfo& t : f.tensors()) f.read(t.name);
    f.metadata();
  } catch (const moe::Error&) {
  }
  return 0;
}
