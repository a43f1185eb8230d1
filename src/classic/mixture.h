#pragma once
// The classic mixture of experts (Jacobs et al. 1991) and its hierarchical form (Jordan & Jacobs
// 1994): a tree of gates of depth D and branching b over E = b^D experts of any registered kinds
// (they may differ). A leaf's prior is the product of the gate outputs on its path:
//   p(y | x) = sum_e prod_{gates on e's path} g(x)_{branch} * p_e(y | x).
// Trained by EM:
//   E-step: leaf posteriors h_ie (the normalised joint), a node's posterior the sum of its leaves';
//   M-step: expert e fitted on sample weights h_.e; each gate on its children's posteriors divided
//   by its own (soft targets), weighted by its own posterior.
// Each M-step fit only raises its part of the expected complete log-likelihood, so the (penalised)
// log-likelihood never goes down (a generalised EM). Or by backpropagation (Adam on mini-batches)
// when every expert and gate is differentiable: the gradient of the log-likelihood is the M-step
// objective's gradient at the current posteriors.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "classic/expert.h"

namespace moe::classic {

struct MixtureConfig {
  Task task = Task::regression;
  std::vector<std::string> kinds;  // one per expert, e.g. {"linear", "linear", "tree", "tree"}
  nlohmann::json expert_options = nlohmann::json::object();
  double gate_l2 = 1e-4;
  uint64_t seed = 1;
  int depth = 1;                       // levels of gates; kinds.size() must be a power b^depth
  std::string gate_kind = "logistic";  // a registered classifying kind: "logistic" (linear), "mlp"
  nlohmann::json gate_options = nlohmann::json::object();  // the gate's options ("l2" from gate_l2)
};

struct EmConfig {
  int max_iterations = 200;
  double tolerance = 1e-7;  // stop when an iteration gains less than this per sample
  int restarts = 1;         // independent random starts; the best objective is kept
};

struct BackpropConfig {
  int epochs = 200;
  int64_t batch_size = 64;
  double learning_rate = 0.01;  // Adam
  double tolerance = 1e-7;      // an epoch must gain this much per sample to count as progress
  int patience = 10;            // stop after this many epochs without progress
  int restarts = 1;
};

class Mixture {
 public:
  // inputs d, outputs m (regression: 1; classification: the number of classes).
  Mixture(int64_t inputs, int64_t outputs, MixtureConfig cfg);

  Mat gate(const Mat& X) const;                          // [n, E]: each expert's prior weight
  Mat posteriors(const Mat& X, const Mat& Y) const;      // [n, E]
  Mat predict(const Mat& X) const;                       // [n, m]: sum_e g_e E_e[y | x]
  double log_likelihood(const Mat& X, const Mat& Y) const;  // sum_i log sum_e g_ie p_e(y_i | x_i)
  double objective(const Mat& X, const Mat& Y) const;        // log_likelihood - every penalty

  // Random soft posteriors (from seed), then one M-step on them: both methods start there.
  void initialize(const Mat& X, const Mat& Y, uint64_t seed);
  // One E-step and M-step; returns the objective after it.
  double em_iteration(const Mat& X, const Mat& Y);
  // initialize + EM to convergence, restarts times; keeps the best. Returns the objective after every
  // iteration of the kept run. progress (optional) is told each (start, iteration, objective).
  using Progress = std::function<void(int start, int iteration, double objective)>;
  std::vector<double> fit_em(const Mat& X, const Mat& Y, const EmConfig& em, const Progress& progress = {});
  // initialize + Adam; the objective after every epoch of the kept run. moe::Error naming a kind
  // that is not differentiable.
  std::vector<double> fit_backprop(const Mat& X, const Mat& Y, const BackpropConfig& bp, const Progress& progress = {});

  // Backpropagation's view: every gate's then every expert's flat parameters, and the gradient of
  // objective() over the rows given with each row's log-likelihood weighted by row_scale.
  bool differentiable() const;
  Vec flat_parameters() const;
  void set_flat_parameters(const Vec& theta);
  Vec flat_gradient(const Mat& X, const Mat& Y, double row_scale = 1.0) const;

  // Every parameter: "gate.NAME" (depth 1) or "gates.G.NAME" (gate G in level order), and
  // "experts.K.NAME"; set_parameters restores them.
  std::map<std::string, Mat> parameters() const;
  void set_parameters(const std::map<std::string, Mat>& p);

  const MixtureConfig& config() const { return cfg_; }
  int64_t inputs() const { return inputs_; }
  int64_t outputs() const { return outputs_; }
  int64_t num_experts() const { return int64_t(experts_.size()); }
  int64_t branching() const { return branching_; }
  int64_t num_gates() const { return int64_t(gates_.size()); }
  const Expert& expert(int64_t k) const { return *experts_[size_t(k)]; }

 private:
  void build(uint64_t seed);  // fresh gates and experts
  void m_step(const Mat& X, const Mat& Y, const Mat& H);
  Mat log_gate(const Mat& X) const;                 // [n, E]: log of gate()
  Mat log_joint(const Mat& X, const Mat& Y) const;  // [n, E]: log g_ie + log p_e(y_i | x_i)
  // Gate G's soft targets [n, b] and weights [n] from leaf posteriors H [n, E].
  void gate_targets(const Mat& H, int64_t g, Mat& targets, Vec& weights) const;
  int64_t leaves_under(int level) const;  // experts below one node of this level
  std::string gate_prefix(int64_t g) const;

  int64_t inputs_, outputs_;
  MixtureConfig cfg_;
  int64_t branching_ = 1;
  std::vector<std::unique_ptr<Expert>> gates_;  // level order: level l holds b^l gates
  std::vector<int> gate_level_;
  std::vector<int64_t> gate_index_;  // position within its level
  std::vector<std::unique_ptr<Expert>> experts_;
};

}  // namespace moe::classic
