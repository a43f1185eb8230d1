// The text corpus reader: any bytes (invalid UTF-8, NULs, a file shorter than a sequence) load or
// are refused with moe::Error; a loaded corpus samples batches inside its bounds.
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "fuzz_util.h"
#include "train/text_corpus.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = moe::fuzz::write_input("text.txt", data, size);
  try {
    const moe::TextCorpus c = moe::TextCorpus::load({path});
    const int64_t B = 2, T = 8;
    std::vector<int32_t> tokens(B * T), targets(B * T);
    moe::Rng rng(size);
    c.sample_batch(tokens.data(), targets.data(), B, T, rng);
    for (int32_t t : tokens)
      if (t < 0 || t > 255) __builtin_trap();
  } catch (const moe::Error&) {
  }
  return 0;
}
