#pragma once
// Linear / ridge regression expert: y = [1, x] B + noise, one Gaussian noise variance per output.
#include "classic/expert.h"

namespace moe::classic {

struct LinearExpertConfig {
  double l2 = 1e-6;            // ridge on the slopes (not the intercept), in units of the noise variance
  double min_variance = 1e-9;  // floor of the noise variance (a perfect fit would make it 0)
};

class LinearExpert : public Expert {
 public:
  LinearExpert(int64_t inputs, int64_t outputs, LinearExpertConfig cfg = {});
  std::string kind() const override { return "linear"; }
  // Coordinate ascent, each step exact: B given the variances (weighted ridge normal equations),
  // then each variance given B (weighted mean squared residual).
  void fit(const Mat& X, const Mat& Y, const Vec& w) override;
  Mat predict(const Mat& X) const override;
  Vec log_likelihood(const Mat& X, const Mat& Y) const override;
  double penalty() const override;
  std::map<std::string, Mat> parameters() const override;  // "coef" [d + 1, m], "variance" [m, 1]
  void set_parameters(const std::map<std::string, Mat>& p) override;
  // theta = [vec(coef) (column-major), log variance per output].
  bool differentiable() const override { return true; }
  Vec flat_parameters() const override;
  int64_t flat_size() const override { return B_.size() + var_.size(); }
  void set_flat_parameters(const Vec& theta) override;
  Vec flat_gradient(const Mat& X, const Mat& Y, const Vec& w) const override;

  const Mat& coefficients() const { return B_; }  // [d + 1, m], intercept first
  const Vec& variances() const { return var_; }   // [m]

 private:
  LinearExpertConfig cfg_;
  Mat B_;
  Vec var_;
};

std::unique_ptr<Expert> make_linear_expert(const ExpertSpec& spec);

}  // namespace moe::classic
