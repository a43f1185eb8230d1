// moe fit --model-config VIT.json (--dataset fashion-mnist | --data IMAGES.idx --labels LABELS.idx):
// the vision MoE classifier (src/vision/), trained with its test set scored after every epoch,
// saved (config.json + model.safetensors + its training state) after every epoch so that a killed run
// keeps its last one and --resume continues it.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "vision_commands.h"
#include "io/atomic_file.h"
#include "io/dir_lock.h"
#include "io/safetensors.h"
#include "train/adamw.h"
#include "vision/classifier_state.h"
#include "vision/train_classifier.h"

namespace moe::cli {

int run_fit_vision(const VisionFitArgs& a) {
  using namespace vision;
  if (a.model_config.empty() && !a.resume)
    throw Error("--model-config VIT.json is required for an image classifier (configs/vit-moe-fashion.json)");
  if (a.dataset.empty() == a.data.empty()) throw Error("give either --dataset fashion-mnist or --data IMAGES.idx --labels LABELS.idx");
  if (!a.data.empty() && a.labels.empty()) throw Error("--data IMAGES.idx needs --labels LABELS.idx");
  if (a.test_data.empty() != a.test_labels.empty()) throw Error("--test-data and --test-labels go together");
  if (!a.dataset.empty() && a.dataset != "fashion-mnist") throw Error("--dataset " + a.dataset + ": the one known data set is fashion-mnist");
  if (a.epochs < 1 || a.batch_size < 1 || !(a.learning_rate > 0) || a.time_limit < 0)
    throw Error("--epochs and --batch-size must be >= 1, --learning-rate > 0 and --time-limit >= 0");
  if (a.resume && !std::filesystem::exists(a.out + "/config.json"))
    throw Error("--resume: " + a.out + " holds no model to continue");
  if (!a.resume && std::filesystem::exists(a.out + "/config.json") && !a.overwrite)
    throw Error(a.out + " already holds a model (pass --resume to continue its training or --overwrite to replace it)");
  // Resuming: the model config, the settings and the epoch come from what the run saved, checked
  // before the data is read.
  ClassifierTrainConfig tc;
  int resume_epoch = 0;
  std::string settings_from;
  if (a.resume) {
    resume_epoch = saved_classifier_epoch(a.out);
    settings_from = classifier_state_path(a.out, resume_epoch);
    if (!std::filesystem::exists(settings_from))
      throw Error("--resume: " + a.out + " was saved after epoch " + std::to_string(resume_epoch) + " but " + settings_from +
                  " is missing");
    const SafetensorsFile f = SafetensorsFile::open(settings_from);
    const auto it = f.metadata().find("settings");
    if (it == f.metadata().end()) throw Error("[vision] " + settings_from + ": metadata lacks 'settings'");
    tc = parse_classifier_settings(it->second, "[vision] " + settings_from);
  } else {
    tc.epochs = a.epochs, tc.batch_size = a.batch_size, tc.lr = float(a.learning_rate), tc.seed = a.seed;
    tc.max_shift = a.max_shift, tc.flip = !a.no_flip, tc.warmup_steps = a.warmup;
  }
  tc.time_limit_s = a.time_limit, tc.checkpoint_dir = a.out, tc.resume = a.resume;
  const VisionConfig cfg = VisionConfig::load(a.resume ? a.out + "/config.json" : a.model_config);
  ImageSet train, test;
  if (!a.dataset.empty()) {
    train = load_fashion_mnist("train");
    test = load_fashion_mnist("test");
  } else {
    train = load_image_set(a.data, a.labels);
    if (!a.test_data.empty()) test = load_image_set(a.test_data, a.test_labels);
  }
  check_images(cfg, train, "training");
  if (test.n) check_images(cfg, test, "test");
  std::filesystem::create_directories(a.out);
  const DirLock lock(a.out, "moe fit");  // the model is rewritten every epoch: one writer at a time
  std::unique_ptr<VisionTransformer> owned;
  if (a.resume) {
    owned = std::move(load_classifier(a.out).model);
  } else {
    owned = std::make_unique<VisionTransformer>(cfg);
    owned->init_weights(a.seed);
  }
  VisionTransformer& model = *owned;
  int64_t params = 0;
  for (Param* p : model.params()) params += p->w.numel();
  // The experts a patch does not reach: the blocks' config counts them (its embedding terms cancel).
  const int64_t active = params - (cfg.blocks.total_params() - cfg.blocks.active_params());
  const Normalisation norm = pixel_statistics(train);
  if (a.resume) {
    // Checked before anything is printed: a run that cannot go on is one error line.
    AdamW probe(model.params(), {});
    resume_classifier_state(a.out, tc, train, probe);
  }
  std::fprintf(stderr, "fit: %lld training images (%lldx%lld), %lld test images, %s, %lld parameters (%lld active per patch), %d epochs",
               (long long)train.n, (long long)train.rows, (long long)train.cols, (long long)test.n,
               cfg.blocks.is_moe() ? "MoE MLP blocks" : "dense MLP blocks", (long long)params, (long long)active, tc.epochs);
  if (a.resume) std::fprintf(stderr, ", resumed after epoch %d", resume_epoch);
  std::fprintf(stderr, "\n");
  // The metrics of the epochs already done (a line cut by a crash, or beyond the saved epoch, goes).
  std::string log;
  if (a.resume) {
    std::ifstream in(a.out + "/metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
      try {
        if (nlohmann::json::parse(line).value("epoch", 0) <= resume_epoch) log += line + "\n";
      } catch (const nlohmann::json::exception&) {
      }
    }
  }
  auto progress = [&](const EpochReport& r) {
    std::fprintf(stderr, "  epoch %d (%lld steps, %.0f s): train loss %.4f accuracy %.4f, test loss %.4f accuracy %.4f\n", r.epoch,
                 (long long)r.steps, r.seconds, r.train_loss, r.train_accuracy, r.test_loss, r.test_accuracy);
    log += nlohmann::json{{"epoch", r.epoch}, {"steps", r.steps}, {"seconds", r.seconds}, {"train_loss", r.train_loss},
                          {"train_accuracy", r.train_accuracy}, {"test_loss", r.test_loss}, {"test_accuracy", r.test_accuracy}}
               .dump() + "\n";
    atomic_write_file(a.out + "/metrics.jsonl", log);  // after the model and its state (train_classifier)
  };
  const auto hist = train_classifier(model, train, test, tc, norm, progress);
  const EpochReport& last = hist.back();
  std::printf("trained %d epochs in %.0f s: test accuracy %.4f (loss %.4f); saved to %s\n", last.epoch, last.seconds,
              last.test_accuracy, last.test_loss, a.out.c_str());
  if (a.json)
    std::printf("%s\n", nlohmann::json{{"epochs", last.epoch}, {"seconds", last.seconds}, {"train_accuracy", last.train_accuracy},
                                       {"test_rows", test.n}, {"test_accuracy", last.test_accuracy}, {"test_loss", last.test_loss},
                                       {"parameters", params}, {"active_parameters", active}}
                            .dump()
                            .c_str());
  return 0;
}

}  // namespace moe::cli
