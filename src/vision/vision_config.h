#pragma once
// A vision Transformer classifier's config.json: the image and patch sizes and the number of
// classes, beside the keys of an ordinary model config for its blocks. "model_type": "mixtral"
// gives MoE MLP blocks (any registered router, the same expert banks as the language models);
// "mistral" gives the dense twin. Example (configs/vit-moe-fashion.json):
//   {"model_type": "mixtral", "image_size": 28, "num_channels": 1, "patch_size": 4, "num_labels": 10,
//    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
//    "num_local_experts": 8, "num_experts_per_tok": 2}
#include <string>

#include <nlohmann/json.hpp>

#include "model/config.h"

namespace moe::vision {

struct VisionConfig {
  int image_size = 28;   // square images, image_size x image_size pixels
  int num_channels = 1;
  int patch_size = 4;    // non-overlapping patch_size x patch_size patches, raster order
  int num_labels = 10;
  ModelConfig blocks;    // the encoder blocks (bidirectional attention: blocks.causal is false)
  nlohmann::json source;  // the JSON it was read from, written back with the model

  int patches_per_side() const { return image_size / patch_size; }
  int num_patches() const { return patches_per_side() * patches_per_side(); }
  int patch_dim() const { return patch_size * patch_size * num_channels; }

  // moe::Error("[config] <src>: ...") naming the key on anything wrong.
  static VisionConfig from_json(const nlohmann::json& j, const std::string& src);
  static VisionConfig load(const std::string& path);
  // True when a config.json describes an image classifier (it has "patch_size").
  static bool is_vision(const nlohmann::json& j);
};

}  // namespace moe::vision
