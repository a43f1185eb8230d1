// moe predict on an image classifier (moe fit --model-config): the test split of --dataset, or IDX
// images with optional labels; predictions as CSV, accuracy when labels are known, a confusion matrix.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "classic/plots.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "vision/train_classifier.h"
#include "vision_commands.h"

namespace moe::cli {

bool is_vision_model(const std::string& dir) {
  std::ifstream in(dir + "/config.json");
  if (!in) return false;
  try {
    return vision::VisionConfig::is_vision(nlohmann::json::parse(in));
  } catch (const nlohmann::json::exception&) {
    return false;  // the classic reader reports the bad file
  }
}

int run_predict_vision(const VisionPredictArgs& a) {
  using namespace vision;
  if (a.dataset.empty() == a.data.empty()) throw Error("give either --dataset fashion-mnist (its test split) or --data IMAGES.idx [--labels LABELS.idx]");
  if (!a.dataset.empty() && a.dataset != "fashion-mnist") throw Error("--dataset " + a.dataset + ": the one known data set is fashion-mnist");
  LoadedClassifier m = load_classifier(a.model);
  const int K = m.model->config().num_labels;
  ImageSet s;
  if (!a.dataset.empty()) {
    s = load_fashion_mnist("test");
  } else if (!a.labels.empty()) {
    s = load_image_set(a.data, a.labels);
  } else {
    s = load_images(a.data);
  }
  const bool labelled = !a.dataset.empty() || !a.labels.empty();
  if (!a.confusion.empty() && !labelled) throw Error("--confusion needs the true labels (--labels or --dataset)");
  const Evaluation e = evaluate_classifier(*m.model, s, m.norm);
  std::ostringstream csv;
  csv << "prediction\n";
  for (int32_t p : e.predictions) csv << p << "\n";
  if (!a.confusion.empty()) {
    std::vector<std::vector<int64_t>> counts(size_t(K), std::vector<int64_t>(size_t(K), 0));
    for (int64_t i = 0; i < s.n; ++i) ++counts[size_t(s.labels[size_t(i)])][size_t(e.predictions[size_t(i)])];
    std::vector<std::string> names;
    static const char* kFashion[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
    for (int k = 0; k < K; ++k) names.push_back(!a.dataset.empty() && K == 10 ? kFashion[k] : std::to_string(k));
    atomic_write_file(a.confusion, classic::confusion_svg(names, counts));
  }
  if (!a.out.empty()) atomic_write_file(a.out, csv.str());
  else if (!a.json) std::fputs(csv.str().c_str(), stdout);
  nlohmann::json j = {{"rows", s.n}};
  if (labelled) {
    j["accuracy"] = e.accuracy;
    j["loss"] = e.loss;
    std::fprintf(stderr, "%s: %lld images, accuracy %.4f\n", a.dataset.empty() ? a.data.c_str() : "fashion-mnist test",
                 (long long)s.n, e.accuracy);
  }
  if (a.json) std::printf("%s\n", j.dump().c_str());
  return 0;
}

}  // namespace moe::cli
