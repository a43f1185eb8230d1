#pragma once
// MLP expert: one tanh hidden layer. Regression: a Gaussian mean per output with a learned noise
// variance; classification: softmax over the classes (soft target rows allowed, so it can be a gate).
// Its M-step runs L-BFGS on the weighted log-likelihood from the current weights, which only ever
// raises it (lbfgs.h), so EM stays monotone.
#include "classic/expert.h"

namespace moe::classic {

struct MlpExpertConfig {
  int64_t hidden = 16;
  double l2 = 1e-4;        // ridge on both weight matrices (not the biases)
  int fit_iterations = 40;  // L-BFGS iterations per fit()
  double min_variance = 1e-9;
};

class MlpExpert : public Expert {
 public:
  MlpExpert(Task task, int64_t inputs, int64_t outputs, MlpExpertConfig cfg, uint64_t seed);
  std::string kind() const override { return "mlp"; }
  void fit(const Mat& X, const Mat& Y, const Vec& w) override;
  Mat predict(const Mat& X) const override;
  Mat log_predict(const Mat& X) const override;
  Vec log_likelihood(const Mat& X, const Mat& Y) const override;
  double penalty() const override;
  // "w1" [d, h], "b1" [1, h], "w2" [h, m], "b2" [1, m]; regression adds "variance" [m, 1].
  std::map<std::string, Mat> parameters() const override;
  void set_parameters(const std::map<std::string, Mat>& p) override;
  // theta = [vec(w1), b1, vec(w2), b2, log variance (regression)], column-major.
  bool differentiable() const override { return true; }
  Vec flat_parameters() const override;
  int64_t flat_size() const override;
  void set_flat_parameters(const Vec& theta) override;
  Vec flat_gradient(const Mat& X, const Mat& Y, const Vec& w) const override;

 private:
  Mat outputs_of(const Mat& X, Mat* hidden) const;  // [n, m] means or logits; hidden [n, h]
  // sum_i w_i log p(y_i | x_i) - penalty(), and its gradient into grad when not null.
  double objective(const Mat& X, const Mat& Y, const Vec& w, Vec* grad) const;

  Task task_;
  MlpExpertConfig cfg_;
  Mat W1_, W2_;
  Vec b1_, b2_, var_;
};

std::unique_ptr<Expert> make_mlp_expert(const ExpertSpec& spec);

}  // namespace moe::classic
