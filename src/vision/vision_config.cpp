#include "vision/vision_config.h"

#include "core/error.h"
#include "io/atomic_file.h"

namespace moe::vision {

namespace {

using nlohmann::json;

int positive_int(const json& j, const char* key, int fallback, const std::string& src) {
  if (!j.contains(key)) return fallback;
  const json& v = j[key];
  if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 1 << 20)
    throw Error("[config] " + src + ": '" + key + "' must be a positive whole number, got " + v.dump());
  return int(v.get<int64_t>());
}

}  // namespace

bool VisionConfig::is_vision(const json& j) { return j.is_object() && j.contains("patch_size"); }

VisionConfig VisionConfig::from_json(const json& j, const std::string& src) {
  if (!j.is_object()) throw Error("[config] " + src + ": expected a JSON object");
  VisionConfig c;
  c.image_size = positive_int(j, "image_size", c.image_size, src);
  c.num_channels = positive_int(j, "num_channels", c.num_channels, src);
  c.patch_size = positive_int(j, "patch_size", c.patch_size, src);
  c.num_labels = positive_int(j, "num_labels", c.num_labels, src);
  if (c.image_size % c.patch_size != 0)
    throw Error("[config] " + src + ": image_size " + std::to_string(c.image_size) + " is not a multiple of patch_size " +
                std::to_string(c.patch_size));
  if (c.num_labels < 2) throw Error("[config] " + src + ": num_labels must be at least 2");
  // The blocks' keys: no vocabulary (the patches are embedded linearly), as many positions as patches.
  json blocks = j;
  for (const char* k : {"image_size", "num_channels", "patch_size", "num_labels"}) blocks.erase(k);
  if (blocks.contains("vocab_size")) throw Error("[config] " + src + ": 'vocab_size' means nothing for an image classifier");
  blocks["vocab_size"] = 256;  // what ModelConfig checks for byte-level models; the blocks never embed tokens
  if (!blocks.contains("max_position_embeddings")) blocks["max_position_embeddings"] = c.num_patches();
  c.blocks = ModelConfig::from_json(blocks, src);
  if (c.blocks.max_position_embeddings < c.num_patches())
    throw Error("[config] " + src + ": max_position_embeddings " + std::to_string(c.blocks.max_position_embeddings) +
                " is below the " + std::to_string(c.num_patches()) + " patches of an image");
  if (c.blocks.ffn_type == "peer") throw Error("[config] " + src + ": PEER layers are not supported in the vision model");
  c.blocks.causal = false;
  c.source = j;
  return c;
}

VisionConfig VisionConfig::load(const std::string& path) {
  json j;
  try {
    j = json::parse(read_file(path));
  } catch (const json::exception& e) {
    throw Error("[config] " + path + ": not valid JSON: " + e.what());
  }
  return from_json(j, path);
}

}  // namespace moe::vision
