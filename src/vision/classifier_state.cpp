#include "vision/classifier_state.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/safetensors.h"
#include "train/optimizer_state.h"
#include "vision/train_classifier.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace moe::vision {

namespace {

constexpr const char* kFormat = "moe-classifier-state-v1";
constexpr const char* kPrefix = "trainer_state-";

// Every number of the metadata: they are strings in safetensors.
template <class T>
T number(const std::map<std::string, std::string>& meta, const char* key, const std::string& where) {
  const auto it = meta.find(key);
  if (it == meta.end()) throw Error(where + ": metadata lacks '" + key + "'");
  try {
    size_t used = 0;
    T v;
    if constexpr (std::is_floating_point_v<T>) v = T(std::stod(it->second, &used));
    else v = T(std::stoll(it->second, &used));
    if (used == it->second.size()) return v;
  } catch (const std::exception&) {
  }
  throw Error(where + ": metadata '" + key + "' is not a number: '" + it->second + "'");
}

}  // namespace

std::string classifier_settings(const ClassifierTrainConfig& c) {
  // Floats as their exact float values: a resumed run compares them as written.
  return json{{"epochs", c.epochs},         {"batch_size", c.batch_size}, {"lr", c.lr},
              {"min_lr_ratio", c.min_lr_ratio}, {"warmup_steps", c.warmup_steps}, {"weight_decay", c.weight_decay},
              {"max_shift", c.max_shift},   {"flip", c.flip},             {"seed", c.seed}}
      .dump();
}

ClassifierTrainConfig parse_classifier_settings(const std::string& text, const std::string& where) {
  ClassifierTrainConfig c;
  try {
    const json j = json::parse(text);
    c.epochs = j.at("epochs").get<int>(), c.batch_size = j.at("batch_size").get<int64_t>();
    c.lr = j.at("lr").get<float>(), c.min_lr_ratio = j.at("min_lr_ratio").get<float>();
    c.warmup_steps = j.at("warmup_steps").get<int64_t>(), c.weight_decay = j.at("weight_decay").get<float>();
    c.max_shift = j.at("max_shift").get<int>(), c.flip = j.at("flip").get<bool>(), c.seed = j.at("seed").get<uint64_t>();
  } catch (const json::exception& e) {
    throw Error(where + ": the saved training settings are malformed (" + e.what() + ")");
  }
  return c;
}

uint64_t image_set_fingerprint(const ImageSet& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&](const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
  };
  const int64_t dims[] = {s.n, s.rows, s.cols, s.channels};
  mix(dims, sizeof dims);
  mix(s.pixels.data(), s.pixels.size());
  mix(s.labels.data(), s.labels.size() * sizeof(int32_t));
  return h;
}

std::string classifier_state_path(const std::string& dir, int epoch) {
  return dir + "/" + kPrefix + std::to_string(epoch) + ".safetensors";
}

void save_classifier_state(const std::string& dir, const AdamW& opt, const ClassifierState& st,
                           const ClassifierTrainConfig& cfg, uint64_t fingerprint) {
  char fp[17];
  std::snprintf(fp, sizeof fp, "%016" PRIx64, fingerprint);
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%.17g", st.seconds);
  write_safetensors(classifier_state_path(dir, st.epochs_done), opt.state_tensors(),
                    {{"format", kFormat},
                     {"epoch", std::to_string(st.epochs_done)},
                     {"step", std::to_string(st.steps)},
                     {"seconds", seconds},
                     {"settings", classifier_settings(cfg)},
                     {"data_fingerprint", fp}});
}

void remove_other_classifier_states(const std::string& dir, int epoch) {
  const std::string keep = fs::path(classifier_state_path(dir, epoch)).filename().string();
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.rfind(kPrefix, 0) == 0 && n != keep) fs::remove(e.path());
  }
}

int saved_classifier_epoch(const std::string& dir) {
  const std::string path = dir + "/model.safetensors";
  if (!fs::exists(path)) throw Error("[vision] " + dir + " holds no model to resume (no model.safetensors)");
  const SafetensorsFile f = SafetensorsFile::open(path);
  if (!f.metadata().count("epoch"))
    throw Error("[vision] " + path + " names no training epoch: not a model that moe fit saved while training");
  const int epoch = number<int>(f.metadata(), "epoch", "[vision] " + path);
  if (epoch < 1) throw Error("[vision] " + path + ": epoch " + std::to_string(epoch) + " is not a finished epoch");
  return epoch;
}

SavedClassifierState load_classifier_state(const std::string& dir, int epoch, AdamW& opt) {
  const std::string path = classifier_state_path(dir, epoch);
  if (!fs::exists(path))
    throw Error("[vision] " + dir + ": the model was saved after epoch " + std::to_string(epoch) +
                " but its training state " + path + " is missing");
  const SafetensorsFile f = SafetensorsFile::open(path);
  const auto& meta = f.metadata();
  const std::string where = "[vision] " + path;
  if (!meta.count("format") || meta.at("format") != kFormat)
    throw Error(where + ": not a classifier training state (format '" + (meta.count("format") ? meta.at("format") : "") + "')");
  SavedClassifierState s;
  s.state.epochs_done = number<int>(meta, "epoch", where);
  s.state.steps = number<int64_t>(meta, "step", where);
  s.state.seconds = number<double>(meta, "seconds", where);
  if (s.state.epochs_done != epoch)
    throw Error(where + " says epoch " + std::to_string(s.state.epochs_done) + ", its name " + std::to_string(epoch));
  if (s.state.steps < 0 || !(s.state.seconds >= 0)) throw Error(where + ": a negative step or time");
  if (!meta.count("settings")) throw Error(where + ": metadata lacks 'settings'");
  s.settings = meta.at("settings");
  parse_classifier_settings(s.settings, where);  // malformed settings are this file's fault
  const auto fp = meta.find("data_fingerprint");
  if (fp == meta.end() || fp->second.size() != 16 || fp->second.find_first_not_of("0123456789abcdef") != std::string::npos)
    throw Error(where + ": metadata 'data_fingerprint' is missing or not 16 hex digits");
  s.fingerprint = std::stoull(fp->second, nullptr, 16);
  load_optimizer_state(opt, {f}, s.state.steps, dir);
  return s;
}

ClassifierState resume_classifier_state(const std::string& dir, const ClassifierTrainConfig& cfg, const ImageSet& train,
                                        AdamW& opt) {
  const SavedClassifierState saved = load_classifier_state(dir, saved_classifier_epoch(dir), opt);
  if (saved.settings != classifier_settings(cfg))
    throw Error("[vision] " + dir + " was trained with the settings " + saved.settings + "; resuming needs the same, got " +
                classifier_settings(cfg));
  if (saved.fingerprint != image_set_fingerprint(train))
    throw Error("[vision] " + dir + " was trained on other training images (" + std::to_string(train.n) +
                " given): resume with the data it started with");
  const int64_t B = std::min<int64_t>(cfg.batch_size, train.n), per_epoch = (train.n + B - 1) / B;
  if (saved.state.steps != per_epoch * saved.state.epochs_done)
    throw Error("[vision] " + classifier_state_path(dir, saved.state.epochs_done) + ": step " +
                std::to_string(saved.state.steps) + " does not end epoch " + std::to_string(saved.state.epochs_done));
  if (saved.state.epochs_done >= cfg.epochs)
    throw Error("[vision] " + dir + " has finished its " + std::to_string(cfg.epochs) + " epochs: nothing to resume");
  return saved.state;
}

}  // namespace moe::vision
