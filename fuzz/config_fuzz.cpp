// config.json: parsing and every validation of ModelConfig (sizes, routers, PEER, grids), and the
// parameter counts a valid config implies; the same file read as a vision classifier's config; and
// as a model directory's config.json and tokenizer_config.json beside a small tokenizer.json (the
// end-of-text ids: eos_token, eos_token_id).
#include <filesystem>

#include "core/error.h"
#include "fuzz_util.h"
#include "model/config.h"
#include "text/model_tokenizer.h"
#include "vision/vision_config.h"

namespace {
// Tokens a, b, ab and the specials <s>, </s>, <|end|> (ids 0-5).
constexpr const char* kTokenizer = R"({"version": "1.0", "truncation": null, "padding": null,
  "added_tokens": [
    {"id": 3, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 4, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 5, "content": "<|end|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
  "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null,
  "model": {"type": "BPE", "dropout": null, "unk_token": null, "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}})";

const std::string& model_dir() {
  static const std::string d = [] {
    const std::string p = moe::fuzz::scratch_dir() + "/model";
    std::filesystem::create_directories(p);
    moe::fuzz::write_input("model/tokenizer.json", reinterpret_cast<const uint8_t*>(kTokenizer), std::char_traits<char>::length(kTokenizer));
    return p;
  }();
  return d;
}
}  // namespace

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
  const std::string& dir = model_dir();
  moe::fuzz::write_input("model/config.json", data, size);
  moe::fuzz::write_input("model/tokenizer_config.json", data, size);
  try {
    const moe::text::ModelTokenizer m = moe::text::load_model_tokenizer(dir, 300);
    for (int32_t id : m.stop_ids)
      if (id < 0 || id >= 300) __builtin_trap();
  } catch (const moe::Error&) {
  }
  return 0;
}
