#pragma once
// The classic mixture of experts (Jacobs et al. 1991; Jordan & Jacobs 1994): a softmax gate over the
// inputs and E experts of any registered kinds (they may differ), trained by EM:
//   E-step: posteriors h_ik = g_k(x_i) p_k(y_i | x_i) / sum_j g_j(x_i) p_j(y_i | x_i)
//   M-step: expert k fitted on sample weights h_.k; the gate fitted on the soft targets h.
// Each M-step fit only raises its part of the expected complete log-likelihood, so the (penalised)
// log-likelihood never goes down (a generalised EM).
#include <memory>
#include <string>
#include <vector>

#include "classic/expert.h"
#include "classic/softmax_expert.h"

namespace moe::classic {

struct MixtureConfig {
  Task task = Task::regression;
  std::vector<std::string> kinds;  // one per expert, e.g. {"linear", "linear", "linear", "linear"}
  nlohmann::json expert_options = nlohmann::json::object();
  double gate_l2 = 1e-4;
  uint64_t seed = 1;
};

struct EmConfig {
  int max_iterations = 200;
  double tolerance = 1e-7;  // stop when an iteration gains less than this per sample
  int restarts = 1;         // independent random starts; the best objective is kept
};

class Mixture {
 public:
  // inputs d, outputs m (regression: 1; classification: the number of classes).
  Mixture(int64_t inputs, int64_t outputs, MixtureConfig cfg);

  Mat gate(const Mat& X) const;                          // [n, E]
  Mat posteriors(const Mat& X, const Mat& Y) const;      // [n, E]
  Mat predict(const Mat& X) const;                       // [n, m]: sum_k g_k E_k[y | x]
  double log_likelihood(const Mat& X, const Mat& Y) const;  // sum_i log sum_k g_ik p_k(y_i | x_i)
  double objective(const Mat& X, const Mat& Y) const;        // log_likelihood - every penalty

  // Random soft posteriors (from seed), then one M-step on them.
  void initialize(const Mat& X, const Mat& Y, uint64_t seed);
  // One E-step and M-step; returns the objective after it.
  double em_iteration(const Mat& X, const Mat& Y);
  // initialize + EM to convergence, restarts times; keeps the best. Returns the objective after every
  // iteration of the kept run.
  std::vector<double> fit_em(const Mat& X, const Mat& Y, const EmConfig& em);

  // Every parameter, named "gate.NAME" and "experts.K.NAME"; set_parameters restores them.
  std::map<std::string, Mat> parameters() const;
  void set_parameters(const std::map<std::string, Mat>& p);

  const MixtureConfig& config() const { return cfg_; }
  int64_t inputs() const { return inputs_; }
  int64_t outputs() const { return outputs_; }
  int64_t num_experts() const { return int64_t(experts_.size()); }
  const Expert& expert(int64_t k) const { return *experts_[size_t(k)]; }

 private:
  void m_step(const Mat& X, const Mat& Y, const Mat& H);
  Mat log_joint(const Mat& X, const Mat& Y) const;  // [n, E]: log g_ik + log p_k(y_i | x_i)

  int64_t inputs_, outputs_;
  MixtureConfig cfg_;
  std::unique_ptr<SoftmaxExpert> gate_;
  std::vector<std::unique_ptr<Expert>> experts_;
};

}  // namespace moe::classic
