// The classic mixture's model directory (config.json + model.safetensors, src/classic/model_dir.h):
// the input is the config's text, a NUL byte, then the safetensors bytes. Any pair may be refused
// with moe::Error; a pair that loads must predict finite-shaped output on a few rows (trees walked,
// MLPs run) without crashing, leaking or hanging.
#include <algorithm>
#include <cstring>

#include "classic/model_dir.h"
#include "core/error.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint8_t* nul = static_cast<const uint8_t*>(std::memchr(data, 0, size));
  const size_t config_size = nul ? size_t(nul - data) : size;
  moe::fuzz::write_input("config.json", data, config_size);
  const size_t rest = nul ? size - config_size - 1 : 0;
  moe::fuzz::write_input("model.safetensors", nul ? nul + 1 : data, rest);
  try {
    const moe::classic::ClassicModel m = moe::classic::load_classic_model(moe::fuzz::scratch_dir());
    const int64_t d = m.mixture->inputs();
    if (d <= 0 || d > (int64_t(1) << 16)) return 0;
    moe::classic::Mat X(3, d);
    for (int64_t i = 0; i < X.size(); ++i) X.data()[i] = double(i % 7) - 3.0;
    const moe::classic::Mat P = m.encoding.decode_predictions(m.mixture->predict(X));
    if (P.rows() != 3 || P.cols() != m.mixture->outputs()) __builtin_trap();
  } catch (const moe::Error&) {
  }
  return 0;
}
