// Resuming a classifier's training (classifier_state.h): a run stopped after an epoch and resumed,
// twice, ends with the very weights of the run that never stopped; and every state it cannot
// continue (other settings, other data, a missing or corrupt state, a finished run, a model saved
// without one) is refused with a message naming what is wrong.
#include "vision/classifier_state.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "../test_util.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "quadrant_images.h"
#include "vision/train_classifier.h"

namespace moe::vision {
namespace {

namespace fs = std::filesystem;
using test::quadrant_images;

VisionConfig tiny(const std::string& router = "topk_softmax") {
  return VisionConfig::from_json({{"model_type", "mixtral"}, {"router", router}, {"image_size", 8}, {"num_channels", 1}, {"patch_size", 4},
                                  {"num_labels", 4}, {"hidden_size", 16}, {"intermediate_size", 24},
                                  {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
                                  {"num_local_experts", 4}, {"num_experts_per_tok", 2}, {"router_aux_loss_coef", 0.01}},
                                 "tiny");
}

// Shifts and mirroring on, so that the resumed run must also continue the augmentation stream.
ClassifierTrainConfig settings(const std::string& dir) {
  ClassifierTrainConfig c;
  c.epochs = 4, c.batch_size = 48, c.lr = 3e-3f, c.warmup_steps = 5, c.max_shift = 1, c.flip = true, c.seed = 7;
  c.checkpoint_dir = dir;
  return c;
}

struct Fixture {
  ImageSet train = quadrant_images(200, 1), test_set = quadrant_images(64, 2);
  Normalisation norm = pixel_statistics(train);
};

// Trains a new model in dir; stop_after > 0 stops it after that epoch (a time limit every epoch passes).
std::vector<EpochReport> start(const Fixture& f, const std::string& dir, int stop_after, const std::string& router) {
  VisionTransformer m(tiny(router));
  m.init_weights(3);
  ClassifierTrainConfig c = settings(dir);
  if (stop_after > 0) c.epochs = 4, c.time_limit_s = 1e-12;
  auto hist = train_classifier(m, f.train, f.test_set, c, f.norm);
  EXPECT_TRUE(stop_after <= 0 || int(hist.size()) == 1);
  return hist;
}

std::vector<EpochReport> resume(const Fixture& f, const std::string& dir, bool stop_after_one = false,
                                const ClassifierTrainConfig* override_cfg = nullptr, const ImageSet* train = nullptr) {
  LoadedClassifier l = load_classifier(dir);
  ClassifierTrainConfig c = override_cfg ? *override_cfg : settings(dir);
  c.resume = true;
  if (stop_after_one) c.time_limit_s = 1e-12;
  return train_classifier(*l.model, train ? *train : f.train, f.test_set, c, f.norm);
}

std::vector<std::string> state_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind("trainer_state-", 0) == 0) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

void expect_resumed_run_matches(const std::string& router) {
  const Fixture f;
  test::ScratchDir whole, parts;
  const auto straight = start(f, whole.path, 0, router);
  ASSERT_EQ(straight.size(), 4u);
  EXPECT_EQ(state_files(whole.path), std::vector<std::string>{"trainer_state-4.safetensors"});

  start(f, parts.path, 1, router);
  EXPECT_EQ(saved_classifier_epoch(parts.path), 1);
  // A crash after the next epoch's state was written but before its model: the stale state is
  // ignored (the model names epoch 1) and removed once epoch 2 is saved.
  fs::copy_file(classifier_state_path(parts.path, 1), classifier_state_path(parts.path, 2));
  const auto second = resume(f, parts.path, true);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].epoch, 2);
  EXPECT_EQ(state_files(parts.path), std::vector<std::string>{"trainer_state-2.safetensors"});
  const auto rest = resume(f, parts.path);
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest.back().epoch, 4);
  EXPECT_EQ(rest.back().steps, straight.back().steps);

  // Bit for bit: the same updates in the same order.
  EXPECT_EQ(second[0].train_loss, straight[1].train_loss);
  EXPECT_EQ(rest.back().train_loss, straight.back().train_loss);
  EXPECT_EQ(rest.back().test_accuracy, straight.back().test_accuracy);
  const SafetensorsFile a = SafetensorsFile::open(whole.path + "/model.safetensors");
  const SafetensorsFile b = SafetensorsFile::open(parts.path + "/model.safetensors");
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (const auto& t : a.tensors()) {
    const Tensor x = a.read(t.name), y = b.read(t.name);
    ASSERT_EQ(x.numel(), y.numel()) << t.name;
    for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ(x[i], y[i]) << t.name << "[" << i << "]";
  }
  // And the optimizer's moments, which the next epoch would use.
  const SafetensorsFile sa = SafetensorsFile::open(classifier_state_path(whole.path, 4));
  const SafetensorsFile sb = SafetensorsFile::open(classifier_state_path(parts.path, 4));
  for (const auto& t : sa.tensors()) {
    const Tensor x = sa.read(t.name), y = sb.read(t.name);
    for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ(x[i], y[i]) << t.name << "[" << i << "]";
  }
  EXPECT_EQ(sa.metadata().at("step"), sb.metadata().at("step"));
}

TEST(ClassifierResume, StoppedAndResumedTwiceEndsWithTheWeightsOfTheRunThatNeverStopped) {
  expect_resumed_run_matches("topk_softmax");
}

// Noisy top-k gating draws new noise after every step: the resumed part must draw its steps' noise.
TEST(ClassifierResume, NoisyGatingResumesWithTheNoiseOfItsSteps) { expect_resumed_run_matches("noisy_topk"); }

TEST(ClassifierResume, RefusesWhatItCannotContinue) {
  const Fixture f;
  test::ScratchDir dir;
  start(f, dir.path, 1, "topk_softmax");

  ClassifierTrainConfig other = settings(dir.path);
  other.lr = 1e-3f;
  EXPECT_NE(test::error_of([&] { resume(f, dir.path, false, &other); }).find("was trained with the settings"), std::string::npos);
  other = settings(dir.path);
  other.epochs = 6;  // another schedule
  EXPECT_NE(test::error_of([&] { resume(f, dir.path, false, &other); }).find("was trained with the settings"), std::string::npos);

  ImageSet changed = f.train;
  changed.pixels[100] ^= 1;
  EXPECT_NE(test::error_of([&] { resume(f, dir.path, false, nullptr, &changed); }).find("other training images"), std::string::npos);

  // A second moment turned NaN on disk.
  const std::string state = classifier_state_path(dir.path, 1);
  {
    const SafetensorsFile s = SafetensorsFile::open(state);
    std::vector<Tensor> held;
    held.reserve(s.tensors().size());
    NamedTensors named;
    bool poisoned = false;
    for (const auto& t : s.tensors()) {
      held.push_back(s.read(t.name));
      if (t.name.rfind("adam.v.", 0) == 0 && !poisoned) held.back()[0] = NAN, poisoned = true;
      named.emplace_back(t.name, &held.back());
    }
    const std::string good = state + ".good";
    fs::copy_file(state, good);
    write_safetensors(state, named, s.metadata());
    EXPECT_NE(test::error_of([&] { resume(f, dir.path); }).find("must be finite"), std::string::npos);
    fs::rename(good, state);
  }
  // Its metadata says another step than the epoch ends at.
  {
    const SafetensorsFile s = SafetensorsFile::open(state);
    std::vector<Tensor> held;
    held.reserve(s.tensors().size());
    NamedTensors named;
    for (const auto& t : s.tensors()) held.push_back(s.read(t.name)), named.emplace_back(t.name, &held.back());
    auto meta = s.metadata();
    const std::string good = state + ".good";
    fs::copy_file(state, good);
    meta["step"] = "3";
    write_safetensors(state, named, meta);
    EXPECT_NE(test::error_of([&] { resume(f, dir.path); }).find("does not end epoch 1"), std::string::npos);
    meta["step"] = "five";
    write_safetensors(state, named, meta);
    EXPECT_NE(test::error_of([&] { resume(f, dir.path); }).find("'step' is not a number"), std::string::npos);
    meta.erase("step");
    write_safetensors(state, named, meta);
    EXPECT_NE(test::error_of([&] { resume(f, dir.path); }).find("lacks 'step'"), std::string::npos);
    meta = s.metadata();
    meta["settings"] = "{\"epochs\": 4}";
    write_safetensors(state, named, meta);
    EXPECT_NE(test::error_of([&] { resume(f, dir.path); }).find("settings are malformed"), std::string::npos);
    meta = s.metadata();
    meta["format"] = "pt";
    write_safetensors(state, named, meta);
    EXPECT_NE(test::error_of([&] { resume(f, dir.path); }).find("not a classifier training state"), std::string::npos);
    fs::rename(good, state);
  }

  fs::rename(state, state + ".gone");
  EXPECT_NE(test::error_of([&] { resume(f, dir.path); }).find("is missing"), std::string::npos);
  fs::rename(state + ".gone", state);

  // The run as it was still resumes, and once finished there is nothing left to continue.
  EXPECT_EQ(resume(f, dir.path).back().epoch, 4);
  EXPECT_NE(test::error_of([&] { resume(f, dir.path); }).find("has finished its 4 epochs"), std::string::npos);

  // A model saved without a training epoch (save_classifier alone) has no state to continue.
  test::ScratchDir plain;
  VisionTransformer m(tiny());
  m.init_weights(3);
  save_classifier(plain.path, m, f.norm);
  EXPECT_NE(test::error_of([&] { resume(f, plain.path); }).find("names no training epoch"), std::string::npos);
  EXPECT_NE(test::error_of([&] {
              ClassifierTrainConfig c = settings("");
              c.resume = true;
              train_classifier(m, f.train, f.test_set, c, f.norm);
            }).find("needs the checkpoint directory"),
            std::string::npos);
}

}  // namespace
}  // namespace moe::vision
