// IDX image and label files (io/idx.cpp), plain or gzipped: the header checks, the size bounds and
// zlib's handling of corrupt streams. Any input may be rejected with moe::Error; nothing else may
// escape, crash, leak or hang.
#include "core/error.h"
#include "fuzz_util.h"
#include "io/idx.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = moe::fuzz::write_input("images.idx", data, size);
  try {
    const moe::IdxArray a = moe::read_idx(path);
    size_t n = 1;
    for (int64_t d : a.shape) n *= size_t(d);
    if (n != a.data.size()) __builtin_trap();  // the reader promised prod(shape) bytes
  } catch (const moe::Error&) {
  }
  return 0;
}
