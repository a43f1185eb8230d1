#pragma once
// Training and evaluating the vision classifier: AdamW with warm-up and cosine decay, shuffled
// mini-batches with random shifts and mirroring, the test set scored after every epoch, and the
// model saved as a directory (config.json + model.safetensors, normalisation in its metadata).
#include <functional>
#include <string>
#include <vector>

#include "vision/image_set.h"
#include "vision/vision_transformer.h"

namespace moe::vision {

struct ClassifierTrainConfig {
  int epochs = 10;
  int64_t batch_size = 128;
  float lr = 2e-3f;
  float min_lr_ratio = 0.05f;
  int64_t warmup_steps = 200;
  float weight_decay = 0.05f;
  int max_shift = 2;     // random translation of up to this many pixels each way
  bool flip = true;      // random left-right mirroring
  uint64_t seed = 1;
  double time_limit_s = 0;  // > 0: stop after the epoch that crosses it (this run's time, not a resumed run's before)
  // Non-empty: after every epoch the model and its training state (classifier_state.h) are written
  // there, so that a killed run keeps its last epoch and can go on from it.
  std::string checkpoint_dir;
  // Continue the run saved in checkpoint_dir: the model passed in must be the one saved there
  // (load_classifier), and these settings and the training images the ones it started with.
  bool resume = false;
};

struct EpochReport {
  int epoch = 0;
  int64_t steps = 0;
  double train_loss = 0, train_accuracy = 0, test_loss = 0, test_accuracy = 0;
  double seconds = 0;  // of training, since the run started (over every resumed part)
};

// moe::Error unless the images have the model's size and channels and labels below num_labels;
// `what` names the set in the message ("training", "test").
void check_images(const VisionConfig& c, const ImageSet& s, const std::string& what);

struct Normalisation {
  float mean = 0, std = 1;  // of the training pixels scaled to [0, 1]
};
Normalisation pixel_statistics(const ImageSet& s);

// Trains in place; progress is called after every epoch, after the checkpoint (if any) is written.
// moe::Error if a resumed run's state, settings or data differ from what it was saved with.
std::vector<EpochReport> train_classifier(VisionTransformer& model, const ImageSet& train, const ImageSet& test,
                                          const ClassifierTrainConfig& cfg, const Normalisation& norm,
                                          const std::function<void(const EpochReport&)>& progress = {});

struct Evaluation {
  double loss = 0, accuracy = 0;
  int64_t rows = 0;
  std::vector<int32_t> predictions;  // [rows]
};
Evaluation evaluate_classifier(VisionTransformer& model, const ImageSet& s, const Normalisation& norm, int64_t batch_size = 256);

// DIR/config.json (the vision config) and DIR/model.safetensors, written atomically; epoch > 0
// names the training epoch it was saved after (metadata "epoch").
void save_classifier(const std::string& dir, VisionTransformer& model, const Normalisation& norm, int epoch = 0);
struct LoadedClassifier {
  std::unique_ptr<VisionTransformer> model;
  Normalisation norm;
};
LoadedClassifier load_classifier(const std::string& dir);

}  // namespace moe::vision
