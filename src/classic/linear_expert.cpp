#include "classic/linear_expert.h"

#include <cmath>
#include <numbers>

#include "core/error.h"

namespace moe::classic {

LinearExpert::LinearExpert(int64_t inputs, int64_t outputs, LinearExpertConfig cfg)
    : cfg_(cfg), B_(Mat::Zero(inputs + 1, outputs)), var_(Vec::Ones(outputs)) {
  if (cfg_.l2 < 0 || !(cfg_.min_variance > 0)) throw Error("[classic] linear expert: l2 must be >= 0 and min_variance > 0");
}

void LinearExpert::fit(const Mat& X, const Mat& Y, const Vec& w) {
  MOE_ASSERT(X.rows() == Y.rows() && X.rows() == w.size() && Y.cols() == B_.cols() && X.cols() + 1 == B_.rows());
  const Mat Xb = with_bias(X);
  const Mat XtW = Xb.transpose() * w.asDiagonal();  // [d + 1, n]
  const Mat A = XtW * Xb;
  const double sw = w.sum();
  for (int64_t c = 0; c < B_.cols(); ++c) {
    // maximise -sum_i w_i r_i^2 / (2 var) - l2 / 2 |slopes|^2: (Xb' W Xb + var l2 I') b = Xb' W y
    Mat Ac = A;
    for (int64_t j = 1; j < Ac.rows(); ++j) Ac(j, j) += var_[c] * cfg_.l2;
    Ac.diagonal().array() += 1e-12 * (1.0 + Ac.diagonal().cwiseAbs().maxCoeff());  // an empty column
    B_.col(c) = Ac.ldlt().solve(XtW * Y.col(c));
    const Vec r = Y.col(c) - Xb * B_.col(c);
    const double ss = (w.array() * r.array().square()).sum();
    var_[c] = std::max(cfg_.min_variance, sw > 0 ? ss / sw : 1.0);
  }
}

Mat LinearExpert::predict(const Mat& X) const { return with_bias(X) * B_; }

Vec LinearExpert::log_likelihood(const Mat& X, const Mat& Y) const {
  const Mat R = Y - predict(X);
  Vec ll = Vec::Zero(X.rows());
  for (int64_t c = 0; c < B_.cols(); ++c)
    ll.array() += -0.5 * std::log(2 * std::numbers::pi * var_[c]) - R.col(c).array().square() / (2 * var_[c]);
  return ll;
}

double LinearExpert::penalty() const {
  double p = 0;
  for (int64_t c = 0; c < B_.cols(); ++c) p += 0.5 * cfg_.l2 * B_.col(c).tail(B_.rows() - 1).squaredNorm();
  return p;
}

std::map<std::string, Mat> LinearExpert::parameters() const { return {{"coef", B_}, {"variance", Mat(var_)}}; }

void LinearExpert::set_parameters(const std::map<std::string, Mat>& p) {
  const Mat& B = parameter(p, "coef", B_.rows(), B_.cols());
  const Mat& v = parameter(p, "variance", var_.size(), 1);
  if ((v.array() <= 0).any()) throw Error("[classic] linear expert: a noise variance is not positive");
  B_ = B;
  var_ = v.col(0);
}

Vec LinearExpert::flat_parameters() const {
  Vec theta(B_.size() + var_.size());
  theta.head(B_.size()) = Eigen::Map<const Vec>(B_.data(), B_.size());
  theta.tail(var_.size()) = var_.array().log();
  return theta;
}

void LinearExpert::set_flat_parameters(const Vec& theta) {
  MOE_ASSERT(theta.size() == flat_size());
  B_ = Eigen::Map<const Mat>(theta.data(), B_.rows(), B_.cols());
  var_ = theta.tail(var_.size()).array().exp().max(cfg_.min_variance);
}

Vec LinearExpert::flat_gradient(const Mat& X, const Mat& Y, const Vec& w) const {
  const Mat Xb = with_bias(X);
  const Mat R = Y - Xb * B_;  // [n, m]
  // d/dB_c = Xb' W r_c / var_c - l2 slopes; d/dlog var_c = sum_i w_i (r_ic^2 / var_c - 1) / 2.
  Mat G = Xb.transpose() * (w.asDiagonal() * R) * var_.cwiseInverse().asDiagonal();
  G.bottomRows(G.rows() - 1) -= cfg_.l2 * B_.bottomRows(B_.rows() - 1);
  Vec theta(B_.size() + var_.size());
  theta.head(G.size()) = Eigen::Map<const Vec>(G.data(), G.size());
  for (int64_t c = 0; c < var_.size(); ++c) theta[G.size() + c] = 0.5 * (w.array() * (R.col(c).array().square() / var_[c] - 1)).sum();
  return theta;
}

std::unique_ptr<Expert> make_linear_expert(const ExpertSpec& spec) {
  if (spec.task != Task::regression) throw Error("[classic] a 'linear' expert is for regression (use 'logistic' to classify)");
  LinearExpertConfig cfg;
  cfg.l2 = numeric_option(spec, "linear", "l2", cfg.l2);
  cfg.min_variance = numeric_option(spec, "linear", "min_variance", cfg.min_variance);
  return std::make_unique<LinearExpert>(spec.inputs, spec.outputs, cfg);
}

}  // namespace moe::classic
