#include "vision/train_classifier.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "train/adamw.h"
#include "train/schedule.h"
#include "vision/classifier_state.h"

namespace moe::vision {

void check_images(const VisionConfig& c, const ImageSet& s, const std::string& what) {
  if (s.rows != c.image_size || s.cols != c.image_size || s.channels != c.num_channels)
    throw Error("[vision] the " + what + " images are " + std::to_string(s.rows) + "x" + std::to_string(s.cols) + "x" +
                std::to_string(s.channels) + ", the model takes " + std::to_string(c.image_size) + "x" +
                std::to_string(c.image_size) + "x" + std::to_string(c.num_channels));
  if (s.num_labels > c.num_labels)
    throw Error("[vision] the " + what + " labels go up to " + std::to_string(s.num_labels - 1) + ", the model has " +
                std::to_string(c.num_labels) + " classes (num_labels)");
}

Normalisation pixel_statistics(const ImageSet& s) {
  double sum = 0, sq = 0;
  for (uint8_t p : s.pixels) sum += p, sq += double(p) * p;
  const double n = double(std::max<size_t>(s.pixels.size(), 1)), mean = sum / n / 255.0;
  const double var = sq / n / (255.0 * 255.0) - mean * mean;
  return {float(mean), float(std::sqrt(std::max(var, 1e-12)))};
}

Evaluation evaluate_classifier(VisionTransformer& model, const ImageSet& s, const Normalisation& norm, int64_t batch_size) {
  const VisionConfig& c = model.config();
  check_images(c, s, "evaluation");
  model.set_training(false);
  const int64_t N = c.num_patches(), pd = c.patch_dim();
  std::vector<float> patches;
  Evaluation e;
  e.rows = s.n;
  e.predictions.resize(size_t(s.n));
  double nll = 0;
  int64_t correct = 0;
  for (int64_t start = 0; start < s.n; start += batch_size) {
    const int64_t B = std::min(batch_size, s.n - start);
    patches.resize(size_t(B * N * pd));
    for (int64_t b = 0; b < B; ++b) patchify(patches.data() + b * N * pd, s.image(start + b), c, norm.mean, norm.std);
    const ClassifyResult r = model.forward(patches.data(), s.labels.data() + start, B);
    nll += r.nll_sum;
    correct += r.correct;
    const int64_t K = c.num_labels;
    for (int64_t b = 0; b < B; ++b) {
      const float* row = model.logits().data() + b * K;
      e.predictions[size_t(start + b)] = int32_t(std::max_element(row, row + K) - row);
    }
  }
  e.loss = s.n ? nll / double(s.n) : 0.0;
  e.accuracy = s.n ? double(correct) / double(s.n) : 0.0;
  return e;
}

namespace {

// One image's augmentation.
struct Augment {
  int8_t dy = 0, dx = 0;
  bool flip = false;
};

// An epoch's draws from the run's stream: the order shuffled further, then each position's shift and
// mirroring. A resumed run replays the epochs it skips, so its stream goes on where it stopped.
void draw_epoch(Rng& rng, std::vector<int64_t>& order, std::vector<Augment>& aug, const ClassifierTrainConfig& cfg) {
  const int64_t n = int64_t(order.size());
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[size_t(i)], order[rng.next_u64() % uint64_t(i + 1)]);
  aug.resize(size_t(n));
  const int span = 2 * cfg.max_shift + 1;
  for (auto& a : aug) {
    a.dy = int8_t(int(rng.next_u64() % uint64_t(span)) - cfg.max_shift);
    a.dx = int8_t(int(rng.next_u64() % uint64_t(span)) - cfg.max_shift);
    a.flip = cfg.flip && (rng.next_u64() & 1);
  }
}

}  // namespace

std::vector<EpochReport> train_classifier(VisionTransformer& model, const ImageSet& train, const ImageSet& test,
                                          const ClassifierTrainConfig& cfg, const Normalisation& norm,
                                          const std::function<void(const EpochReport&)>& progress) {
  const VisionConfig& c = model.config();
  check_images(c, train, "training");
  if (test.n) check_images(c, test, "test");
  if (cfg.epochs < 1 || cfg.batch_size < 1 || !(cfg.lr > 0) || cfg.max_shift < 0 || cfg.max_shift >= c.image_size ||
      cfg.max_shift > 127)
    throw Error("[vision] training needs epochs and a batch size >= 1, a learning rate > 0 and a shift in [0, image_size)");
  if (train.n == 0) throw Error("[vision] the training set is empty");
  if (cfg.resume && cfg.checkpoint_dir.empty()) throw Error("[vision] resuming needs the checkpoint directory");
  const int64_t N = c.num_patches(), pd = c.patch_dim(), B = std::min<int64_t>(cfg.batch_size, train.n);
  const int64_t per_epoch = (train.n + B - 1) / B;
  AdamW opt(model.params(), AdamWConfig{.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = cfg.weight_decay});
  const LRSchedule sched{.max_lr = cfg.lr, .min_lr = cfg.lr * cfg.min_lr_ratio, .warmup_steps = cfg.warmup_steps,
                         .total_steps = per_epoch * cfg.epochs};
  Rng rng(cfg.seed ^ 0x5eed7a11ULL);
  std::vector<int64_t> order(size_t(train.n));
  std::iota(order.begin(), order.end(), int64_t(0));
  std::vector<Augment> aug;
  const uint64_t fingerprint = cfg.checkpoint_dir.empty() ? 0 : image_set_fingerprint(train);
  ClassifierState at;
  if (cfg.resume) {
    at = resume_classifier_state(cfg.checkpoint_dir, cfg, train, opt);
    model.restore_steps(at.steps);
    for (int e = 0; e < at.epochs_done; ++e) draw_epoch(rng, order, aug, cfg);
  }
  std::vector<float> patches(size_t(B * N * pd));
  std::vector<int32_t> labels(static_cast<size_t>(B));
  const auto t0 = std::chrono::steady_clock::now();
  auto this_run = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  std::vector<EpochReport> out;
  int64_t step = at.steps;
  for (int epoch = at.epochs_done + 1; epoch <= cfg.epochs; ++epoch) {
    draw_epoch(rng, order, aug, cfg);
    double nll = 0;
    int64_t correct = 0, seen = 0;
    model.set_training(true);
    for (int64_t start = 0; start < train.n; start += B) {
      const int64_t rows = std::min(B, train.n - start);
      for (int64_t b = 0; b < rows; ++b) {
        const int64_t i = order[size_t(start + b)];
        const Augment& a = aug[size_t(start + b)];
        patchify(patches.data() + b * N * pd, train.image(i), c, norm.mean, norm.std, a.dy, a.dx, a.flip);
        labels[size_t(b)] = train.labels[size_t(i)];
      }
      model.zero_grad();
      const ClassifyResult r = model.forward(patches.data(), labels.data(), rows);
      if (!std::isfinite(r.nll_sum)) throw Error("[vision] the training loss is not finite at step " + std::to_string(step + 1) + ": lower --lr");
      model.backward();
      opt.step(sched.at(++step));
      model.after_step();
      nll += r.nll_sum, correct += r.correct, seen += r.count;
    }
    EpochReport rep;
    rep.epoch = epoch, rep.steps = step;
    rep.train_loss = nll / double(seen), rep.train_accuracy = double(correct) / double(seen);
    if (test.n) {
      const Evaluation e = evaluate_classifier(model, test, norm);
      rep.test_loss = e.loss, rep.test_accuracy = e.accuracy;
    }
    rep.seconds = at.seconds + this_run();
    if (!cfg.checkpoint_dir.empty()) {
      // State, then model, then the older states: see classifier_state.h.
      save_classifier_state(cfg.checkpoint_dir, opt, {.epochs_done = epoch, .steps = step, .seconds = rep.seconds}, cfg,
                            fingerprint);
      save_classifier(cfg.checkpoint_dir, model, norm, epoch);
      remove_other_classifier_states(cfg.checkpoint_dir, epoch);
    }
    out.push_back(rep);
    if (progress) progress(rep);
    if (cfg.time_limit_s > 0 && this_run() >= cfg.time_limit_s) break;
  }
  model.set_training(false);
  return out;
}

void save_classifier(const std::string& dir, VisionTransformer& model, const Normalisation& norm, int epoch) {
  std::filesystem::create_directories(dir);
  NamedTensors tensors;
  for (Param* p : model.params()) tensors.emplace_back(p->name, &p->w);
  // Nine significant digits read back as the same float: a resumed run and predict normalise as fit did.
  auto exact = [](float v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.9g", double(v));
    return std::string(b);
  };
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"pixel_mean", exact(norm.mean)}, {"pixel_std", exact(norm.std)}};
  if (epoch > 0) meta["epoch"] = std::to_string(epoch);
  write_safetensors(dir + "/model.safetensors", tensors, meta);
  atomic_write_file(dir + "/config.json", model.config().source.dump(2) + "\n");
}

LoadedClassifier load_classifier(const std::string& dir) {
  LoadedClassifier out;
  const VisionConfig c = VisionConfig::load(dir + "/config.json");
  out.model = std::make_unique<VisionTransformer>(c);
  const SafetensorsFile f = SafetensorsFile::open(dir + "/model.safetensors");
  for (Param* p : out.model->params()) {
    if (f.info(p->name).shape != p->w.shape())
      throw Error("[checkpoint] " + dir + "/model.safetensors: tensor '" + p->name + "' has the wrong shape for config.json");
    f.read_into(p->name, p->w.data(), p->w.numel());
  }
  auto number = [&](const char* key) {
    const auto it = f.metadata().find(key);
    if (it == f.metadata().end()) throw Error("[checkpoint] " + dir + "/model.safetensors: metadata lacks '" + key + "'");
    try {
      return std::stof(it->second);
    } catch (const std::exception&) {
      throw Error("[checkpoint] " + dir + "/model.safetensors: metadata '" + key + "' is not a number");
    }
  };
  out.norm = {number("pixel_mean"), number("pixel_std")};
  if (!(out.norm.std > 0) || !std::isfinite(out.norm.mean))
    throw Error("[checkpoint] " + dir + "/model.safetensors: bad pixel statistics");
  return out;
}

}  // namespace moe::vision
