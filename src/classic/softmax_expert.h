#pragma once
// Logistic / softmax regression expert: p(c | x) = softmax([1, x] B)_c, the last class the reference
// (its logits fixed at 0, so the parameters are identified). Fitted by Newton's method (IRLS) with a
// backtracking line search. The same model, fitted on soft targets, is the mixture's gate.
#include "classic/expert.h"

namespace moe::classic {

struct SoftmaxExpertConfig {
  double l2 = 1e-4;         // ridge on the slopes
  double l2_bias = 1e-8;    // and on the intercepts (keeps Newton defined when a class has no weight)
  int max_newton_steps = 25;
  double tolerance = 1e-9;  // stop when a step gains less than this (relative to the total weight)
};

class SoftmaxExpert : public Expert {
 public:
  SoftmaxExpert(int64_t inputs, int64_t classes, SoftmaxExpertConfig cfg = {});
  std::string kind() const override { return "logistic"; }
  // Newton from the current parameters; every accepted step raises the penalised weighted
  // log-likelihood, so an EM built on it never goes down.
  void fit(const Mat& X, const Mat& Y, const Vec& w) override;
  Mat predict(const Mat& X) const override;  // [n, classes]
  Vec log_likelihood(const Mat& X, const Mat& Y) const override;  // sum_c Y_ic log p_ic
  double penalty() const override;
  std::map<std::string, Mat> parameters() const override { return {{"coef", B_}}; }  // [d + 1, classes - 1]
  void set_parameters(const std::map<std::string, Mat>& p) override;
  Mat log_predict(const Mat& X) const override;
  // theta = vec(coef), column-major.
  bool differentiable() const override { return true; }
  Vec flat_parameters() const override { return Eigen::Map<const Vec>(B_.data(), B_.size()); }
  int64_t flat_size() const override { return B_.size(); }
  void set_flat_parameters(const Vec& theta) override;
  Vec flat_gradient(const Mat& X, const Mat& Y, const Vec& w) const override;

  // sum_i w_i sum_c Y_ic log p_ic - penalty(): what fit() maximises.
  double objective(const Mat& X, const Mat& Y, const Vec& w) const;
  // Its gradient with respect to coefficients() [d + 1, classes - 1].
  Mat gradient(const Mat& X, const Mat& Y, const Vec& w) const;
  const Mat& coefficients() const { return B_; }
  void set_coefficients(const Mat& B);
  // Small random coefficients (breaks a gate's symmetry before the first fit).
  void randomize(uint64_t seed, double scale);

 private:
  SoftmaxExpertConfig cfg_;
  int64_t classes_;
  Mat B_;  // [d + 1, classes - 1]
};

// Row-wise log-softmax of logits [n, k].
Mat log_softmax_rows(const Mat& logits);

std::unique_ptr<Expert> make_softmax_expert(const ExpertSpec& spec);

}  // namespace moe::classic
