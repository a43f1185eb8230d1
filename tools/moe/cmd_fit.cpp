// moe fit: a classic mixture of experts on a CSV table (src/classic/), trained by EM, saved as a
// directory that moe predict reads.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "classic/metrics.h"
#include "classic/model_dir.h"
#include "commands.h"
#include "core/error.h"
#include "io/csv.h"

namespace moe::cli {

namespace {
struct FitArgs {
  std::string data, target, task, experts = "linear:4", gate = "linear", method = "em", out;
  int depth = 1, iterations = 200, restarts = 3;
  double l2 = 1e-4, gate_l2 = 1e-4;
  uint64_t seed = 1;
  bool json = false, overwrite = false;
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
  if (kinds.size() < 2) throw Error("--experts: a mixture needs at least 2 experts (e.g. linear:4)");
  return kinds;
}

int run_fit(const FitArgs& a) {
  using namespace classic;
  if (a.method != "em") throw Error("--method " + a.method + ": only em is implemented so far (backprop is not)");
  if (a.gate != "linear") throw Error("--gate " + a.gate + ": only a linear (softmax) gate is implemented so far");
  if (a.depth != 1) throw Error("--depth " + std::to_string(a.depth) + ": hierarchical mixtures are not implemented yet (depth 1 only)");
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
  MixtureConfig mc{task, kinds, {{"l2", a.l2}}, a.gate_l2, a.seed};
  model.mixture = std::make_unique<Mixture>(model.encoding.inputs(), model.encoding.outputs(), mc);
  std::fprintf(stderr, "fit: %lld rows, %lld inputs, %zu experts (%s), %s, EM with %d start(s)\n", (long long)table.rows,
               (long long)model.encoding.inputs(), kinds.size(), a.experts.c_str(),
               task == Task::regression ? "regression" : "classification", a.restarts);
  const auto history = model.mixture->fit_em(X, Y, {a.iterations, 1e-7, a.restarts});
  const Mat P = model.mixture->predict(X);
  nlohmann::json j = {{"rows", table.rows}, {"em_iterations", int64_t(history.size()) - 1},
                      {"log_likelihood_per_row", model.mixture->log_likelihood(X, Y) / double(table.rows)}};
  if (task == Task::regression) j["train_mse"] = mean_squared_error(P, Y);
  else j["train_accuracy"] = accuracy(P, Y);
  save_classic_model(a.out, model);
  std::printf("fitted in %lld EM iterations: log-likelihood %.4f per row, %s %.6g; saved to %s\n",
              (long long)(history.size() - 1), j["log_likelihood_per_row"].get<double>(),
              task == Task::regression ? "training MSE" : "training accuracy",
              task == Task::regression ? j["train_mse"].get<double>() : j["train_accuracy"].get<double>(), a.out.c_str());
  if (a.json) std::printf("%s\n", j.dump().c_str());
  return 0;
}
}  // namespace

Runner add_fit(CLI::App& app) {
  auto a = std::make_shared<FitArgs>();
  CLI::App* c = app.add_subcommand("fit", "fit a classic mixture of experts to a CSV table (EM)");
  c->add_option("--data", a->data, "training CSV (header row)")->required();
  c->add_option("--target", a->target, "the column to predict")->required();
  c->add_option("--out", a->out, "model directory to write")->required();
  c->add_option("--task", a->task, "regression or classification (default: from the target's type)");
  c->add_option("--experts", a->experts, "KIND:COUNT,... (kinds: linear, logistic)")->capture_default_str();
  c->add_option("--gate", a->gate, "the gate: linear")->capture_default_str();
  c->add_option("--depth", a->depth, "levels of gates (1)")->capture_default_str();
  c->add_option("--method", a->method, "training method: em")->capture_default_str();
  c->add_option("--iterations", a->iterations, "most EM iterations per start")->capture_default_str();
  c->add_option("--restarts", a->restarts, "random starts (the best is kept)")->capture_default_str();
  c->add_option("--l2", a->l2, "ridge on the experts' slopes")->capture_default_str();
  c->add_option("--gate-l2", a->gate_l2, "ridge on the gate's slopes")->capture_default_str();
  c->add_option("--seed", a->seed, "seed of the random starts")->capture_default_str();
  c->add_flag("--overwrite", a->overwrite, "replace a model already in --out");
  c->add_flag("--json", a->json, "end with one JSON line");
  return [a] { return run_fit(*a); };
}

}  // namespace moe::cli
