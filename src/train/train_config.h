#pragma once
// The settings of a training run: what `moe train` flags set and train_config.json keeps for
// --resume.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace moe {

struct TrainConfig {
  int64_t steps = 600;
  int64_t batch_size = 32;
  int64_t context = 0;          // 0: the model's max_position_embeddings
  float lr = 3e-3f;
  float min_lr_ratio = 0.1f;    // cosine decays to lr * min_lr_ratio
  int64_t warmup_steps = -1;    // -1: min(100, steps / 10)
  float weight_decay = 0.1f;
  float grad_clip = 1.0f;
  uint64_t seed = 0;
  int64_t eval_every = 100;     // validation every N steps (and at the end); 0: only at the end
  int64_t eval_tokens = 65536;  // validation tokens (a fixed prefix of the held-out split)
  int64_t save_every = 200;     // checkpoint every N steps (and at the end)
  std::string out_dir;
  int64_t stop_after = 0;       // if > 0: save and return after this step (as an interrupted run)
  // > 0: layout-exact sums (core/exact_sums.h) over this many blocks of each batch: the losses
  // then do not depend on the number of ranks, for any world size that divides it.
  int exact_blocks = 0;

  nlohmann::json to_json() const;
  // Missing keys keep their defaults; a key of the wrong type throws moe::Error naming it.
  static TrainConfig from_json(const nlohmann::json& j);
  // A run's train_config.json; throws moe::Error naming the file when it is unreadable or not JSON.
  static TrainConfig load(const std::string& path);
  // Throws moe::Error for settings no run can use (non-positive steps or batch, and so on).
  void check() const;
};

}  // namespace moe
