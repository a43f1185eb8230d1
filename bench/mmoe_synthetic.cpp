// The synthetic experiment of the MMoE paper (Ma et al., KDD 2018, section 4; scripts/mmoe_experiment.sh):
// two regression tasks whose label correlation is controlled, and MMoE, OMoE and a shared-bottom
// model of about the same parameter count trained on each. The paper's finding: MMoE does best,
// and its lead grows as the tasks become less related.
//
// Data, for every seed (one draw shared by every correlation and model, so they are compared on the
// same data): u1, u2 orthonormal in R^d (d = 100); w1 = c u1, w2 = c (p u1 + sqrt(1 - p^2) u2), c = 1;
// x ~ N(0, I); y_t = w_t'x + sum_{i=1..m} sin(alpha_i w_t'x + beta_i) + eps, m = 10, alpha_i, beta_i
// ~ N(0, 1) shared by the tasks, eps ~ N(0, 0.01) (variance 0.01; --noise-sd sets its standard
// deviation, 0.1 by default). The paper's "N(0, 0.01)" can also be read as a standard deviation of
// 0.01, as Google Research's generator for this experiment reads it: --noise-sd 0.01.
//
// Protocol (the same for every model): Adam for --epochs epochs at each learning rate of --lrs;
// after every epoch the loss on a validation set (drawn like the training set, never the test set)
// is scored and the best parameters kept; the learning rate with the best validation loss wins, and
// only its test loss is reported. Loss = sum over the two tasks of the mean squared error (the
// noise alone gives 2 noise-sd^2: 0.02 by default).
//
// Usage: mmoe_synthetic [--seeds 10] [--first-seed 1] [--epochs 10] [--train 100000] [--valid 5000] [--test 5000]
//          [--batch 128] [--lrs 0.003,0.01,0.03] [--correlations 1,0.9,0.5,0] [--jobs 2]
//          [--experts 8] [--expert-hidden 16] [--outputs 8] [--tower-hidden 8] [--noise-sd 0.1] [--out FILE.csv]
//          [--trials FILE.csv]
// Writes one CSV row per (correlation, model, seed) and prints a summary table.
#include <CLI/CLI.hpp>
#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "classic/multitask.h"
#include "core/error.h"
#include "core/rng.h"
#include "cli_checks.h"

using namespace moe::classic;

namespace {

struct Args {
  int seeds = 10, first_seed = 1, epochs = 10, jobs = 2;
  int64_t train = 100000, valid = 5000, test = 5000, batch = 128;
  int64_t experts = 8, expert_hidden = 16, outputs = 8, tower_hidden = 8;
  double noise_sd = 0.1;  // of each task's label noise, drawn independently per task
  std::vector<double> lrs = {3e-3, 1e-2, 3e-2};
  std::vector<double> correlations = {1.0, 0.9, 0.5, 0.0};
  std::string out = "out/mmoe_synthetic.csv";
  std::string trials;  // optional CSV: every learning rate's validation result (no test loss)
};

// The options, with their defaults from Args; --help lists them.
void add_options(CLI::App& app, Args& a) {
  app.add_option("--seeds", a.seeds, "seeds (each draws its data and initialisations)")->check(moe::cli::Positive);
  app.add_option("--first-seed", a.first_seed, "first seed");
  app.add_option("--epochs", a.epochs, "epochs at each learning rate")->check(moe::cli::Positive);
  app.add_option("--jobs", a.jobs, "runs side by side, one thread each")->check(moe::cli::Positive);
  app.add_option("--train", a.train, "training rows")->check(moe::cli::Positive);
  app.add_option("--valid", a.valid, "validation rows (learning rate and epoch chosen on them)")->check(moe::cli::Positive);
  app.add_option("--test", a.test, "test rows (the reported loss)")->check(moe::cli::Positive);
  app.add_option("--batch", a.batch, "rows per Adam step")->check(moe::cli::Positive);
  app.add_option("--experts", a.experts, "experts of MMoE and OMoE")->check(moe::cli::Positive);
  app.add_option("--expert-hidden", a.expert_hidden, "hidden ReLU units of an expert")->check(moe::cli::Positive);
  app.add_option("--outputs", a.outputs, "outputs of an expert and of the shared bottom")->check(moe::cli::Positive);
  app.add_option("--tower-hidden", a.tower_hidden, "hidden ReLU units of a task's tower")->check(moe::cli::Positive);
  app.add_option("--lrs", a.lrs, "Adam learning rates tried, comma-separated")->delimiter(',')->check(moe::cli::Positive);
  app.add_option("--correlations", a.correlations, "label correlations, comma-separated")
      ->delimiter(',')
      ->check(CLI::Number)
      ->check(CLI::Range(-1.0, 1.0));
  app.add_option("--noise-sd", a.noise_sd, "standard deviation of each task's label noise")->check(moe::cli::NonNegative);
  app.add_option("--out", a.out, "CSV: one row per (correlation, model, seed)");
  app.add_option("--trials", a.trials, "CSV: every learning rate's validation result (no test loss)");
}

constexpr int64_t kD = 100, kM = 10;

// What a seed fixes of the data: the directions and the sinusoids.
struct Generator {
  Vec u1, u2, alpha, beta;
  explicit Generator(uint64_t seed) {
    moe::Rng rng(seed);
    auto normal = [&](int64_t n) {
      Vec v(n);
      for (auto& x : v) x = rng.normal();
      return v;
    };
    u1 = normal(kD).normalized();
    u2 = normal(kD);
    u2 = (u2 - u2.dot(u1) * u1).normalized();  // Gram-Schmidt
    alpha = normal(kM), beta = normal(kM);
  }
  // n samples [n, d] and their two labels [n, 2] at correlation p. X and the noise come from
  // `stream` alone, so every correlation sees the same inputs.
  void sample(int64_t n, double p, double noise_sd, uint64_t stream, Mat& X, Mat& Y) const {
    moe::Rng rng(stream);
    const double c = 1.0;
    const Vec w1 = c * u1, w2 = c * (p * u1 + std::sqrt(std::max(0.0, 1 - p * p)) * u2);
    X.resize(n, kD), Y.resize(n, 2);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < kD; ++j) X(i, j) = rng.normal();
      const double s[2] = {X.row(i).dot(w1), X.row(i).dot(w2)};
      for (int t = 0; t < 2; ++t) {
        double y = s[t];
        for (int64_t k = 0; k < kM; ++k) y += std::sin(alpha[k] * s[t] + beta[k]);
        Y(i, t) = y + noise_sd * rng.normal();
      }
    }
  }
};

struct Run {
  double correlation = 0;
  Architecture model = Architecture::mmoe;
  int seed = 0;
  int64_t parameters = 0;
  double test_loss = 0, test_mse1 = 0, test_mse2 = 0, valid_loss = 0, train_loss = 0, lr = 0;
  double gate_tv_init = NAN, gate_tv = NAN;  // MMoE: how far its two gates disagree, at the start and as kept
  int best_epoch = 0;
  std::vector<std::string> trials = {};  // CSV rows: lr, valid_loss, best_epoch, train_loss at it, last train loss
};

MultiTaskConfig model_config(const Args& a, Architecture arch, int64_t bottom_hidden, uint64_t seed) {
  MultiTaskConfig c;
  c.architecture = arch;
  c.inputs = kD, c.tasks = 2, c.experts = a.experts, c.expert_hidden = a.expert_hidden;
  c.bottom_hidden = bottom_hidden, c.outputs = a.outputs, c.tower_hidden = a.tower_hidden, c.seed = seed;
  return c;
}

// The shared bottom's hidden size whose parameter count is closest to MMoE's.
int64_t matching_bottom(const Args& a) {
  const int64_t target = MultiTaskModel(model_config(a, Architecture::mmoe, 1, 1)).parameter_count();
  int64_t best = 1;
  auto gap = [&](int64_t h) {
    return std::abs(MultiTaskModel(model_config(a, Architecture::shared_bottom, h, 1)).parameter_count() - target);
  };
  for (int64_t h = 2; h <= 100000 && gap(h) <= gap(h - 1); ++h) best = h;
  return best;
}

// MMoE's two gates on X: the mean over rows of their total-variation distance (0: the same mixture
// of experts for both tasks, as OMoE's one gate gives; 1: no expert in common).
double gate_disagreement(const MultiTaskModel& m, const Mat& X) {
  const Mat G = m.gates(X);  // [n, 2E]
  const Eigen::Index E = G.cols() / 2;
  return 0.5 * (G.leftCols(E) - G.rightCols(E)).cwiseAbs().rowwise().sum().mean();
}

void train_one(const Args& a, int64_t bottom_hidden, const Mat& X, const Mat& Y, const Mat& Xv, const Mat& Yv,
               const Mat& Xt, const Mat& Yt, Run& r) {
  const uint64_t init = moe::mix_seed(uint64_t(r.seed), 3), order = moe::mix_seed(uint64_t(r.seed), 4);
  r.valid_loss = INFINITY;
  r.test_loss = r.test_mse1 = r.test_mse2 = NAN;  // stays so if every learning rate diverged
  for (double lr : a.lrs) {
    MultiTaskModel m(model_config(a, r.model, bottom_hidden, init));
    r.parameters = m.parameter_count();
    if (r.model == Architecture::mmoe) r.gate_tv_init = gate_disagreement(m, Xt);
    double best = INFINITY, best_train = 0;
    int best_epoch = -1;
    std::map<std::string, Mat> kept = m.parameters();
    TrainConfig tc;
    tc.learning_rate = lr, tc.batch_size = a.batch, tc.epochs = a.epochs, tc.seed = order;
    tc.on_epoch = [&](int e, double train_loss) {
      const double v = m.loss(Xv, Yv);
      if (v < best) best = v, best_epoch = e, best_train = train_loss, kept = m.parameters();
    };
    const auto history = m.train(X, Y, tc);
    r.trials.push_back(std::to_string(lr) + ',' + std::to_string(best) + ',' + std::to_string(best_epoch + 1) + ',' +
                       std::to_string(best_train) + ',' + std::to_string(history.back()));
    if (best < r.valid_loss) {
      m.set_parameters(kept);
      const Mat err = m.forward(Xt) - Yt;
      r.valid_loss = best, r.train_loss = best_train, r.best_epoch = best_epoch + 1, r.lr = lr;
      r.test_mse1 = err.col(0).squaredNorm() / double(Xt.rows());
      r.test_mse2 = err.col(1).squaredNorm() / double(Xt.rows());
      r.test_loss = r.test_mse1 + r.test_mse2;
      if (r.model == Architecture::mmoe) r.gate_tv = gate_disagreement(m, Xt);
    }
  }
}

struct Stats {
  double mean = 0, sd = 0;
};
Stats stats(const std::vector<double>& v) {
  Stats s;
  for (double x : v) s.mean += x / double(v.size());
  if (v.size() > 1) {
    for (double x : v) s.sd += (x - s.mean) * (x - s.mean);
    s.sd = std::sqrt(s.sd / double(v.size() - 1));
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) try {
  CLI::App app{"The synthetic experiment of the MMoE paper: MMoE, OMoE and a shared bottom on two tasks"};
  Args a;
  add_options(app, a);
  CLI11_PARSE(app, argc, argv);
  Eigen::setNbThreads(1);  // small products: one run per thread (--jobs) uses the cores better
  const auto t0 = std::chrono::steady_clock::now();
  const Architecture models[] = {Architecture::mmoe, Architecture::omoe, Architecture::shared_bottom};
  const int64_t bottom_hidden = matching_bottom(a);

  std::vector<Run> runs;
  for (double p : a.correlations)
    for (Architecture m : models)
      for (int s = a.first_seed; s < a.first_seed + a.seeds; ++s) runs.push_back({.correlation = p, .model = m, .seed = s});

  std::printf("MMoE synthetic (Ma et al. 2018, sec. 4): d=%lld, train %lld, valid %lld, test %lld, %d epochs, batch %lld, lrs",
              (long long)kD, (long long)a.train, (long long)a.valid, (long long)a.test, a.epochs, (long long)a.batch);
  for (double lr : a.lrs) std::printf(" %g", lr);
  std::printf(", noise sd %g, %d seeds, %d jobs\n", a.noise_sd, a.seeds, a.jobs);
  for (Architecture m : models) {
    const MultiTaskModel model(model_config(a, m, bottom_hidden, 1));
    std::printf("  %-13s %6lld parameters", architecture_name(m).c_str(), (long long)model.parameter_count());
    if (m == Architecture::shared_bottom)
      std::printf(" (bottom %lld -> %lld ReLU -> %lld)", (long long)kD, (long long)bottom_hidden, (long long)a.outputs);
    else
      std::printf(" (%lld experts %lld -> %lld ReLU -> %lld, %s)", (long long)a.experts, (long long)kD,
                  (long long)a.expert_hidden, (long long)a.outputs, m == Architecture::mmoe ? "a gate per task" : "one gate");
    std::printf("; towers %lld -> %lld ReLU -> 1\n", (long long)a.outputs, (long long)a.tower_hidden);
  }
  std::fflush(stdout);

  // Data once per (seed, correlation), built before the runs so that threads only read it.
  struct Split {
    Mat X, Y, Xv, Yv, Xt, Yt;
  };
  std::map<std::pair<int, double>, Split> data;
  for (int s = a.first_seed; s < a.first_seed + a.seeds; ++s) {
    const Generator g(moe::mix_seed(uint64_t(s), 1));
    for (double p : a.correlations) {
      Split& d = data[{s, p}];
      g.sample(a.train, p, a.noise_sd, moe::mix_seed(uint64_t(s), 10), d.X, d.Y);
      g.sample(a.valid, p, a.noise_sd, moe::mix_seed(uint64_t(s), 11), d.Xv, d.Yv);
      g.sample(a.test, p, a.noise_sd, moe::mix_seed(uint64_t(s), 12), d.Xt, d.Yt);
    }
  }

  std::atomic<size_t> next{0}, done{0};
  std::vector<std::string> errors(runs.size());
  auto worker = [&] {
    for (size_t i; (i = next++) < runs.size();) {
      try {
        const Split& d = data.at({runs[i].seed, runs[i].correlation});
        train_one(a, bottom_hidden, d.X, d.Y, d.Xv, d.Yv, d.Xt, d.Yt, runs[i]);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
      const size_t k = ++done;
      std::fprintf(stderr, "\r  %zu / %zu runs", k, runs.size());
    }
  };
  std::vector<std::thread> pool;
  for (int j = 0; j < a.jobs; ++j) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  std::fprintf(stderr, "\n");
  for (const auto& e : errors)
    if (!e.empty()) throw moe::Error(e);

  if (const auto dir = std::filesystem::path(a.out).parent_path(); !dir.empty()) std::filesystem::create_directories(dir);
  std::ofstream csv(a.out);
  if (!csv) throw moe::Error("[mmoe_synthetic] cannot write " + a.out);
  csv << "correlation,model,seed,parameters,test_loss,test_mse_task1,test_mse_task2,valid_loss,train_loss,lr,best_epoch,"
         "gate_tv_init,gate_tv\n";
  csv.precision(6);
  for (const auto& r : runs)
    csv << r.correlation << ',' << architecture_name(r.model) << ',' << r.seed << ',' << r.parameters << ',' << r.test_loss
        << ',' << r.test_mse1 << ',' << r.test_mse2 << ',' << r.valid_loss << ',' << r.train_loss << ',' << r.lr << ','
        << r.best_epoch << ',' << r.gate_tv_init << ',' << r.gate_tv << '\n';
  if (!csv.flush()) throw moe::Error("[mmoe_synthetic] cannot write " + a.out);

  if (!a.trials.empty()) {
    std::ofstream t(a.trials);
    t << "correlation,model,seed,lr,valid_loss,best_epoch,train_loss_at_best,last_train_loss\n";
    for (const auto& r : runs)
      for (const auto& row : r.trials) t << r.correlation << ',' << architecture_name(r.model) << ',' << r.seed << ',' << row << '\n';
    if (!t.flush()) throw moe::Error("[mmoe_synthetic] cannot write " + a.trials);
  }

  // Summary: test loss per (correlation, model) over seeds; then the paired gaps to MMoE (the same
  // data and seeds), their standard error, and how many seeds MMoE won.
  auto losses = [&](double p, Architecture m) {
    std::vector<double> v;
    for (const auto& r : runs)
      if (r.correlation == p && r.model == m) v.push_back(r.test_loss);
    return v;
  };
  std::printf("\ntest loss (sum of the two tasks' MSE; noise floor %g), mean +- sd over %d seeds\n",
              2 * a.noise_sd * a.noise_sd, a.seeds);
  std::printf("%-11s %-17s %-17s %-17s\n", "correlation", "mmoe", "omoe", "shared_bottom");
  for (double p : a.correlations) {
    std::printf("%-11g", p);
    for (Architecture m : models) {
      const Stats s = stats(losses(p, m));
      std::printf(" %7.4f +- %-6.4f", s.mean, s.sd);
    }
    std::printf("\n");
  }
  std::printf("\ngap to MMoE (paired by seed: mean +- standard error, seeds MMoE won)\n");
  std::printf("%-11s %-28s %-28s\n", "correlation", "omoe - mmoe", "shared_bottom - mmoe");
  for (double p : a.correlations) {
    std::printf("%-11g", p);
    const auto mm = losses(p, Architecture::mmoe);
    for (Architecture m : {Architecture::omoe, Architecture::shared_bottom}) {
      const auto other = losses(p, m);
      std::vector<double> diff;
      int wins = 0;
      for (size_t i = 0; i < mm.size(); ++i) diff.push_back(other[i] - mm[i]), wins += other[i] > mm[i];
      const Stats s = stats(diff);
      std::printf(" %+8.4f +- %-6.4f (%d/%zu)   ", s.mean, s.sd / std::sqrt(double(diff.size())), wins, diff.size());
    }
    std::printf("\n");
  }
  // Fit, apart from generalisation: the training loss at the kept epoch (averaged over its batches).
  std::printf("\ntraining loss at the kept epoch, mean over seeds\n%-11s %-9s %-9s %-13s\n", "correlation", "mmoe", "omoe",
              "shared_bottom");
  for (double p : a.correlations) {
    std::printf("%-11g", p);
    for (Architecture m : models) {
      std::vector<double> v;
      for (const auto& r : runs)
        if (r.correlation == p && r.model == m) v.push_back(r.train_loss);
      std::printf(" %-9.4f", stats(v).mean);
    }
    std::printf("\n");
  }
  // MMoE's gates: total-variation distance between the two tasks' mixtures, on the test rows.
  std::printf("\nMMoE's two gates apart (mean total variation on the test rows), at the start -> as kept\n");
  for (double p : a.correlations) {
    std::vector<double> start, kept;
    for (const auto& r : runs)
      if (r.correlation == p && r.model == Architecture::mmoe) start.push_back(r.gate_tv_init), kept.push_back(r.gate_tv);
    std::printf("%-11g %.3f -> %.3f\n", p, stats(start).mean, stats(kept).mean);
  }
  std::map<double, int> chosen;
  for (const auto& r : runs) ++chosen[r.lr];
  std::printf("\nlearning rates chosen on validation:");
  for (const auto& [lr, count] : chosen) std::printf(" %g x%d", lr, count);
  std::printf("\nwrote %s in %.0f s\n", a.out.c_str(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "mmoe_synthetic: %s\n", e.what());
  return 1;
}
