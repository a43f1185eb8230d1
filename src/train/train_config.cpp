#include "train/train_config.h"

#include <cmath>
#include <limits>
#include <type_traits>

#include "core/error.h"
#include "io/atomic_file.h"

namespace moe {

using nlohmann::json;

json TrainConfig::to_json() const {
  return {{"steps", steps}, {"batch_size", batch_size}, {"context", context}, {"lr", lr},
          {"min_lr_ratio", min_lr_ratio}, {"warmup_steps", warmup_steps},
          {"weight_decay", weight_decay}, {"grad_clip", grad_clip}, {"seed", seed},
          {"eval_every", eval_every}, {"eval_tokens", eval_tokens}, {"save_every", save_every},
          {"exact_blocks", exact_blocks}};
}

TrainConfig TrainConfig::from_json(const json& j) {
  if (!j.is_object()) throw Error("[train] train_config: expected a JSON object, got " + std::string(j.type_name()));
  TrainConfig c;
  // j.value() throws nlohmann's type_error on a key of the wrong type: said here with the key.
  auto get = [&](const char* key, auto& out) {
    if (!j.contains(key) || j[key].is_null()) return;
    const json& v = j[key];
    using T = std::decay_t<decltype(out)>;
    const bool ok = std::is_integral_v<T> ? v.is_number_integer() : v.is_number();
    if (!ok) throw Error(std::string("[train] train_config: key '") + key + "' must be " +
                         (std::is_integral_v<T> ? "an integer" : "a number") + ", got " + v.dump());
    if constexpr (std::is_integral_v<T>) {
      using L = std::numeric_limits<T>;
      const bool in_range = v.is_number_unsigned() ? v.get<uint64_t>() <= uint64_t(L::max())
                                                   : v.get<int64_t>() >= int64_t(L::min());
      if (!in_range) throw Error(std::string("[train] train_config: key '") + key + "' is out of range: " + v.dump());
    }
    out = v.get<T>();
  };
  get("steps", c.steps);
  get("batch_size", c.batch_size);
  get("context", c.context);
  get("lr", c.lr);
  get("min_lr_ratio", c.min_lr_ratio);
  get("warmup_steps", c.warmup_steps);
  get("weight_decay", c.weight_decay);
  get("grad_clip", c.grad_clip);
  get("seed", c.seed);
  get("eval_every", c.eval_every);
  get("eval_tokens", c.eval_tokens);
  get("save_every", c.save_every);
  get("exact_blocks", c.exact_blocks);
  return c;
}

TrainConfig TrainConfig::load(const std::string& path) {
  json j;
  try {
    j = json::parse(read_file(path));
  } catch (const json::exception& e) {
    throw Error("[train] " + path + ": not valid JSON: " + e.what());
  }
  try {
    return from_json(j);
  } catch (const Error& e) {
    std::string m = e.what();
    const std::string tag = "[train] train_config: ";
    if (m.rfind(tag, 0) == 0) m = "[train] " + path + ": " + m.substr(tag.size());
    throw Error(m);
  }
}

void TrainConfig::check() const {
  const TrainConfig& c = *this;
  if (c.steps < 1) throw Error("[train] --steps must be positive, got " + std::to_string(c.steps));
  if (c.batch_size < 1) throw Error("[train] --batch-size must be positive, got " + std::to_string(c.batch_size));
  if (c.context < 0 || c.context == 1) throw Error("[train] --context must be at least 2, got " + std::to_string(c.context));
  if (!(c.lr > 0) || !std::isfinite(c.lr)) throw Error("[train] --lr must be a positive number");
  if (c.out_dir.empty()) throw Error("[train] an output directory is required");
  if (c.exact_blocks < 0) throw Error("[train] --exact-blocks must be 0 (off) or positive, got " + std::to_string(c.exact_blocks));
  if (c.exact_blocks > 0 && c.batch_size % c.exact_blocks != 0)
    throw Error("[train] --exact-blocks " + std::to_string(c.exact_blocks) + " does not divide --batch-size " +
                std::to_string(c.batch_size) + " (each block is a whole number of sequences)");
}


}  // namespace moe
