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
  double time_limit_s = 0;  // > 0: stop after the epoch that crosses it
};

struct EpochReport {
  int epoch = 0;
  int64_t steps = 0;
  double train_loss = 0, train_accuracy = 0, test_loss = 0, test_accuracy = 0;
  double seconds = 0;  // since training started
};

// moe::Error unless the images have the model's size and channels and labels below num_labels;
// `what` names the set in the message ("training", "test").
void check_images(const VisionConfig& c, const ImageSet& s, const std::string& what);

struct Normalisation {
  float mean = 0, std = 1;  // of the training pixels scaled to [0, 1]
};
Normalisation pixel_statistics(const ImageSet& s);

// Trains in place; progress is called after every epoch (and may write a checkpoint).
std::vector<EpochReport> train_classifier(VisionTransformer& model, const ImageSet& train, const ImageSet& test,
                                          const ClassifierTrainConfig& cfg, const Normalisation& norm,
                                          const std::function<void(const EpochReport&)>& progress = {});

struct Evaluation {
  double loss = 0, accuracy = 0;
  int64_t rows = 0;
  std::vector<int32_t> predictions;  // [rows]
};
Evaluation evaluate_classifier(VisionTransformer& model, const ImageSet& s, const Normalisation& norm, int64_t batch_size = 256);

// DIR/config.json (the vision config) and DIR/model.safetensors, written atomically.
void save_classifier(const std::string& dir, VisionTransformer& model, const Normalisation& norm);
struct LoadedClassifier {
  std::unique_ptr<VisionTransformer> model;
  Normalisation norm;
};
LoadedClassifier load_classifier(const std::string& dir);

}  // namespace moe::vision
