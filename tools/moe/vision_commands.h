#pragma once
// The image-classifier halves of moe fit and moe predict (cmd_fit_vision.cpp, cmd_predict_vision.cpp);
// cmd_fit.cpp and cmd_predict.cpp parse the flags.
#include <cstdint>
#include <string>

namespace moe::cli {

struct VisionFitArgs {
  std::string model_config, dataset, data, labels, test_data, test_labels, out;
  int epochs = 10, max_shift = 2;
  int64_t batch_size = 128, warmup = 200;
  double learning_rate = 2e-3, time_limit = 0;
  uint64_t seed = 1;
  bool no_flip = false, json = false, overwrite = false;
  bool resume = false;  // continue the run saved in out (its settings and model config)
};

int run_fit_vision(const VisionFitArgs& a);

struct VisionPredictArgs {
  std::string model, dataset, data, labels, out, confusion;
  bool json = false;
};

int run_predict_vision(const VisionPredictArgs& a);
// True when DIR/config.json describes an image classifier.
bool is_vision_model(const std::string& dir);

}  // namespace moe::cli
