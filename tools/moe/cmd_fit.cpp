// moe fit: a classic mixture of experts on a CSV table (src/classic/), trained by EM or
// backpropagation, saved as a directory that moe predict reads.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "classic/metrics.h"
#include "classic/model_dir.h"
#include "commands.h"
#include "core/error.h"
#include "vision_commands.h"
#include "io/csv.h"

namespace moe::cli {

namespace {
struct FitArgs {
  std::string data, target, task, experts = "linear:4", gate = "linear", method = "em", out;
  int depth = 1, iterations = 200, restarts = 3, hidden = 16, max_depth = 5;
  int64_t batch_size = 64;
  double l2 = 1e-4, gate_l2 = 1e-4, learning_rate = 0.01;
  uint64_t seed = 1;
  bool json = false, overwrite = false;
  VisionFitArgs vision;  // --model-config / --dataset: an image classifier instead
};

// "linear:4,tree:2" -> {"linear", "linear", "linear", "linear", "tree", "tree"}
std::vector<std::string> expert_list(const std::string& spec) {
  std::vector<std::string> kinds;
  std::stringstream ss(spec);
  std::string part;
  while (std::getline(ss, part, ',')) {
    const auto colon = part.find(':');
    const std::string kind = part.substr(0, colon);
    int count = 1;
    if (colon != std::string::npos) {
      try {
        size_t used = 0;
        count = std::stoi(part.substr(colon + 1), &used);
        if (used != part.size() - colon - 1) throw std::invalid_argument("");
      } catch (const std::exception&) {
        throw Error("--experts: '" + part + "' is not KIND:COUNT");
      }
    }
    if (kind.empty() || count < 1 || count > 1024) throw Error("--experts: '" + part + "' is not KIND:COUNT with 1 <= COUNT <= 1024");
    for (int i = 0; i < count; ++i) kinds.push_back(kind);
  }
  if (kinds.empty()) throw Error("--experts: no experts (e.g. linear:4)");
  return kinds;
}

int run_fit(const FitArgs& a) {
  using namespace classic;
  if (a.data.empty() || a.target.empty()) throw Error("--data TRAIN.csv and --target COLUMN are required (or --model-config for images)");
  if (a.method != "em" && a.method != "backprop") throw Error("--method " + a.method + ": em or backprop");
  if (a.gate != "linear" && a.gate != "mlp") throw Error("--gate " + a.gate + ": linear or mlp");
  if (a.depth < 1 || a.depth > 16) throw Error("--depth must be in [1, 16]");
  if (a.hidden < 1 || a.max_depth < 0 || a.batch_size < 1 || !(a.learning_rate > 0))
    throw Error("--hidden and --batch-size must be >= 1, --max-depth >= 0 and --learning-rate > 0");
  if (a.iterations < 1 || a.restarts < 1) throw Error("--iterations and --restarts must be at least 1");
  if (!(a.l2 >= 0) || !(a.gate_l2 >= 0)) throw Error("--l2 and --gate-l2 must be >= 0");
  if (std::filesystem::exists(a.out + "/config.json") && !a.overwrite)
    throw Error(a.out + " already holds a model (pass --overwrite to replace it)");
  const auto kinds = expert_list(a.experts);
  const auto known = expert_kinds();
  for (const auto& k : kinds)
    if (std::find(known.begin(), known.end(), k) == known.end()) {
      std::string list;
      for (const auto& n : known) list += (list.empty() ? "" : ", ") + n;
      throw Error("--experts: unknown kind '" + k + "' (known: " + list + ")");
    }
  const CsvTable table = read_csv(a.data);
  Task task = Task::regression;
  if (a.task == "classification") task = Task::classification;
  else if (a.task.empty()) task = table.column(a.target).numeric ? Task::regression : Task::classification;
  else if (a.task != "regression") throw Error("--task " + a.task + ": regression or classification");
  ClassicModel model;
  model.encoding = TabularEncoding::fit(table, a.target, task);
  const Mat X = model.encoding.encode_inputs(table), Y = model.encoding.encode_targets(table);
  MixtureConfig mc{task, kinds, {{"l2", a.l2}, {"hidden", a.hidden}, {"max_depth", a.max_depth}}, a.gate_l2, a.seed, a.depth,
                   a.gate == "linear" ? "logistic" : "mlp", {{"hidden", a.hidden}}};
  model.mixture = std::make_unique<Mixture>(model.encoding.inputs(), model.encoding.outputs(), mc);
  const bool em = a.method == "em";
  if (!em && !model.mixture->differentiable())
    throw Error("--method backprop: the tree kind has no gradient (use --method em, or differentiable kinds: linear, logistic, mlp)");
  std::fprintf(stderr, "fit: %lld rows, %lld inputs, %zu experts (%s) under %lld gate(s) of depth %d, %s, %s with %d start(s)\n",
               (long long)table.rows, (long long)model.encoding.inputs(), kinds.size(), a.experts.c_str(),
               (long long)model.mixture->num_gates(),
               a.depth, task == Task::regression ? "regression" : "classification", em ? "EM" : "backprop (Adam)", a.restarts);
  // Progress every 10 iterations (and the last): long fits show they are moving.
  const double rows = double(table.rows);
  auto progress = [&](int start, int it, double objective) {
    if (it % 10 == 0) std::fprintf(stderr, "  start %d, %s %d: objective %.6f per row\n", start + 1, em ? "iteration" : "epoch", it, objective / rows);
  };
  const auto history = em ? model.mixture->fit_em(X, Y, {a.iterations, 1e-7, a.restarts}, progress)
                          : model.mixture->fit_backprop(X, Y, {a.iterations, a.batch_size, a.learning_rate, 1e-7, 10, a.restarts}, progress);
  // Scores in the table's units (regression targets are standardised inside the model).
  const Mat P = model.encoding.decode_predictions(model.mixture->predict(X)), Yt = model.encoding.decode_predictions(Y);
  nlohmann::json j = {{"rows", table.rows}, {em ? "em_iterations" : "epochs", int64_t(history.size()) - 1},
                      // per row, as a density of the table's values (the standardisation's Jacobian removed)
                      {"log_likelihood_per_row", model.mixture->log_likelihood(X, Y) / double(table.rows) -
                                                     (task == Task::regression ? std::log(model.encoding.target_scale) : 0.0)}};
  if (task == Task::regression) j["train_mse"] = mean_squared_error(P, Yt);
  else j["train_accuracy"] = accuracy(P, Yt);
  save_classic_model(a.out, model);
  std::printf("fitted in %lld %s: log-likelihood %.4f per row, %s %.6g; saved to %s\n",
              (long long)(history.size() - 1), em ? "EM iterations" : "epochs", j["log_likelihood_per_row"].get<double>(),
              task == Task::regression ? "training MSE" : "training accuracy",
              task == Task::regression ? j["train_mse"].get<double>() : j["train_accuracy"].get<double>(), a.out.c_str());
  if (a.json) std::printf("%s\n", j.dump().c_str());
  return 0;
}
}  // namespace

Runner add_fit(CLI::App& app) {
  auto a = std::make_shared<FitArgs>();
  CLI::App* c = app.add_subcommand("fit", "fit a classic mixture of experts to a CSV table (EM or backprop)");
  c->add_option("--data", a->data, "training CSV (header row), or IDX images with --model-config");
  c->add_option("--target", a->target, "the column to predict");
  c->add_option("--out", a->out, "model directory to write")->required();
  c->add_option("--task", a->task, "regression or classification (default: from the target's type)");
  c->add_option("--experts", a->experts, "KIND:COUNT,... (kinds: linear, logistic, tree, mlp; may differ)")->capture_default_str();
  c->add_option("--gate", a->gate, "the gates: linear (softmax) or mlp")->capture_default_str();
  c->add_option("--depth", a->depth, "levels of gates (HME when > 1; experts must number b^depth)")->capture_default_str();
  c->add_option("--method", a->method, "training: em, or backprop (Adam; every kind differentiable)")->capture_default_str();
  c->add_option("--iterations", a->iterations, "most EM iterations or epochs per start")->capture_default_str();
  c->add_option("--restarts", a->restarts, "random starts (the best is kept)")->capture_default_str();
  c->add_option("--l2", a->l2, "ridge on the experts' weights")->capture_default_str();
  c->add_option("--gate-l2", a->gate_l2, "ridge on the gates' weights")->capture_default_str();
  c->add_option("--hidden", a->hidden, "hidden units of mlp experts and gates")->capture_default_str();
  c->add_option("--max-depth", a->max_depth, "depth limit of tree experts")->capture_default_str();
  c->add_option("--batch-size", a->batch_size, "backprop: rows per step")->capture_default_str();
  c->add_option("--learning-rate", a->learning_rate, "backprop: Adam's step size")->capture_default_str();
  c->add_option("--seed", a->seed, "seed of the random starts")->capture_default_str();
  c->add_flag("--overwrite", a->overwrite, "replace a model already in --out");
  c->add_flag("--json", a->json, "end with one JSON line");
  // The vision MoE (docs/classic.md, "A vision MoE").
  VisionFitArgs& img = a->vision;
  c->add_option("--model-config", img.model_config, "images: the classifier's config.json (configs/vit-moe-fashion.json)");
  c->add_option("--dataset", img.dataset, "images: fashion-mnist (Debian's dataset-fashion-mnist; train and test splits)");
  c->add_option("--labels", img.labels, "images: IDX labels for --data");
  c->add_option("--test-data", img.test_data, "images: IDX test images, scored after every epoch");
  c->add_option("--test-labels", img.test_labels, "images: IDX test labels");
  c->add_option("--epochs", img.epochs, "images: passes over the training set")->capture_default_str();
  c->add_option("--time-limit", img.time_limit, "images: stop after the epoch that passes this many seconds (0: none)");
  c->add_option("--warmup", img.warmup, "images: learning-rate warm-up steps")->capture_default_str();
  c->add_option("--max-shift", img.max_shift, "images: random shifts of up to this many pixels")->capture_default_str();
  c->add_flag("--no-flip", img.no_flip, "images: no random left-right mirroring");
  c->add_flag("--resume", img.resume, "images: continue the run saved in --out after its last epoch (same data)");
  return [a, c] {
    if (a->vision.resume) {
      // The run's settings and model config are the saved ones; only the data and this run's limits are given.
      for (const char* flag : {"--model-config", "--epochs", "--warmup", "--max-shift", "--no-flip", "--batch-size",
                               "--learning-rate", "--seed", "--overwrite", "--target", "--experts", "--method"})
        if (c->count(flag))
          throw Error(std::string("--resume continues the run saved in --out with its own settings; ") + flag +
                      " cannot be given with it");
    } else if (a->vision.model_config.empty() && a->vision.dataset.empty()) {
      for (const char* flag : {"--labels", "--test-data", "--test-labels", "--epochs", "--time-limit", "--warmup", "--max-shift", "--no-flip"})
        if (c->count(flag)) throw Error(std::string(flag) + " is for image classifiers (with --model-config), not CSV tables");
      return run_fit(*a);
    }
    VisionFitArgs v = a->vision;
    v.data = a->data, v.out = a->out, v.seed = a->seed, v.json = a->json, v.overwrite = a->overwrite;
    if (c->count("--batch-size")) v.batch_size = a->batch_size;
    if (c->count("--learning-rate")) v.learning_rate = a->learning_rate;
    if (!a->target.empty() || c->count("--experts") || c->count("--method"))
      throw Error("--target, --experts and --method are for CSV tables, not an image classifier");
    return run_fit_vision(v);
  };
}

}  // namespace moe::cli
