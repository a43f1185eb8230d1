// config.json: parsing and every validation of ModelConfig (sizes, routers, PEER, grids), and the
// parameter counts a valid config implies; the same file read as a vision classifier's config.
#include "core/error.h"
#include "fuzz_util.h"
#include "model/config.h"
#include "vision/vision_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = moe::fuzz::write_input("config.json", data, size);
  try {
    const moe::ModelConfig c = moe::ModelConfig::load(path);
    c.total_params();
    c.active_params();
    c.to_json().dump();
  } catch (const moe::Error&) {
  }
  try {
    const moe::vision::VisionConfig v = moe::vision::VisionConfig::load(path);
    v.blocks.total_params();
    if (v.num_patches() < 1 || v.patch_dim() < 1) __builtin_trap();
  } catch (const moe::Error&) {
  }
  return 0;
}
