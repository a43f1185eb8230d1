// The safetensors reader: header validation, then every tensor read and converted to f32, and every
// tensor mapped in place with its bytes read (what a model loaded to run does with 16-bit weights).
// Any input may be rejected with moe::Error; nothing else may escape, crash, leak or hang.
#include "core/error.h"
#include "fuzz_util.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = moe::fuzz::write_input("model.safetensors", data, size);
  try {
    const moe::SafetensorsFile f = moe::SafetensorsFile::open(path);
    for (const moe::TensorInfo& t : f.tensors()) f.read(t.name);
    volatile unsigned sum = 0;  // volatile: the reads stay
    for (const moe::TensorInfo& t : f.tensors()) {
      const moe::SafetensorsFile::Mapped m = f.map(t.name);
      const auto* b = static_cast<const uint8_t*>(m.data);
      for (uint64_t i = 0; b && i < t.end - t.begin; ++i) sum = sum + b[i];
    }
    f.metadata();
  } catch (const moe::Error&) {
  }
  return 0;
}
