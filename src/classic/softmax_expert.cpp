#include "classic/softmax_expert.h"

#include <cmath>

#include "core/error.h"
#include "core/rng.h"

namespace moe::classic {

Mat log_softmax_rows(const Mat& logits) {
  Mat out = logits;
  for (int64_t i = 0; i < out.rows(); ++i) {
    const double mx = out.row(i).maxCoeff();
    const double lse = mx + std::log((out.row(i).array() - mx).exp().sum());
    out.row(i).array() -= lse;
  }
  return out;
}

SoftmaxExpert::SoftmaxExpert(int64_t inputs, int64_t classes, SoftmaxExpertConfig cfg)
    : cfg_(cfg), classes_(classes), B_(Mat::Zero(inputs + 1, std::max<int64_t>(classes - 1, 0))) {
  if (classes < 2) throw Error("[classic] a logistic expert needs at least 2 classes");
  if (cfg_.l2 < 0 || cfg_.l2_bias < 0) throw Error("[classic] logistic expert: l2 must be >= 0");
}

namespace {
// logits [n, K] with the reference class's column at 0.
Mat logits_of(const Mat& Xb, const Mat& B) {
  Mat z = Mat::Zero(Xb.rows(), B.cols() + 1);
  z.leftCols(B.cols()) = Xb * B;
  return z;
}
}  // namespace

Mat SoftmaxExpert::predict(const Mat& X) const { return log_predict(X).array().exp(); }
Mat SoftmaxExpert::log_predict(const Mat& X) const { return log_softmax_rows(logits_of(with_bias(X), B_)); }

void SoftmaxExpert::set_flat_parameters(const Vec& theta) {
  MOE_ASSERT(theta.size() == B_.size());
  B_ = Eigen::Map<const Mat>(theta.data(), B_.rows(), B_.cols());
}

Vec SoftmaxExpert::flat_gradient(const Mat& X, const Mat& Y, const Vec& w) const {
  const Mat G = gradient(X, Y, w);
  return Eigen::Map<const Vec>(G.data(), G.size());
}

Vec SoftmaxExpert::log_likelihood(const Mat& X, const Mat& Y) const {
  MOE_ASSERT(Y.cols() == classes_ && Y.rows() == X.rows());
  const Mat lp = log_softmax_rows(logits_of(with_bias(X), B_));
  return (Y.array() * lp.array()).rowwise().sum();
}

double SoftmaxExpert::penalty() const {
  return 0.5 * cfg_.l2 * B_.bottomRows(B_.rows() - 1).squaredNorm() + 0.5 * cfg_.l2_bias * B_.row(0).squaredNorm();
}

double SoftmaxExpert::objective(const Mat& X, const Mat& Y, const Vec& w) const {
  return w.dot(log_likelihood(X, Y)) - penalty();
}

Mat SoftmaxExpert::gradient(const Mat& X, const Mat& Y, const Vec& w) const {
  const Mat Xb = with_bias(X);
  const Mat P = log_softmax_rows(logits_of(Xb, B_)).array().exp();
  // d/dB_jc = sum_i w_i x_ij (y_ic s_i - p_ic s_i), s_i = sum_c y_ic (1 for one-hot or soft rows)
  const Vec s = Y.rowwise().sum();
  const Mat E = Y - (P.array().colwise() * s.array()).matrix();
  Mat G = Xb.transpose() * (w.asDiagonal() * E.leftCols(classes_ - 1));
  G.bottomRows(G.rows() - 1) -= cfg_.l2 * B_.bottomRows(B_.rows() - 1);
  G.row(0) -= cfg_.l2_bias * B_.row(0);
  return G;
}

void SoftmaxExpert::set_coefficients(const Mat& B) {
  if (B.rows() != B_.rows() || B.cols() != B_.cols()) throw Error("[classic] logistic expert: coefficients of the wrong shape");
  B_ = B;
}

void SoftmaxExpert::set_parameters(const std::map<std::string, Mat>& p) { B_ = parameter(p, "coef", B_.rows(), B_.cols()); }

void SoftmaxExpert::randomize(uint64_t seed, double scale) {
  Rng rng(seed);
  for (int64_t i = 0; i < B_.size(); ++i) B_.data()[i] = rng.normal() * scale;
}

void SoftmaxExpert::fit(const Mat& X, const Mat& Y, const Vec& w) {
  MOE_ASSERT(X.rows() == Y.rows() && X.rows() == w.size() && Y.cols() == classes_ && X.cols() + 1 == B_.rows());
  const Mat Xb = with_bias(X);
  const int64_t D = Xb.cols(), K1 = classes_ - 1, P = D * K1;
  const Vec s = Y.rowwise().sum();
  const double scale = std::max(1e-300, w.sum());
  double f = objective(X, Y, w);
  for (int step = 0; step < cfg_.max_newton_steps; ++step) {
    const Mat G = gradient(X, Y, w);
    // Negative Hessian over vec(B) (column-major: index c * D + j):
    // sum_i w_i s_i (diag(p_i) - p_i p_i^T)_{cc'} x_i x_i^T + ridge.
    const Mat Pr = log_softmax_rows(logits_of(Xb, B_)).array().exp();
    Mat H = Mat::Zero(P, P);
    for (int64_t c = 0; c < K1; ++c)
      for (int64_t c2 = c; c2 < K1; ++c2) {
        Vec a = w.array() * s.array() * Pr.col(c).array() * ((c == c2 ? 1.0 : 0.0) - Pr.col(c2).array());
        const Mat blk = Xb.transpose() * a.asDiagonal() * Xb;
        H.block(c * D, c2 * D, D, D) = blk;
        if (c2 != c) H.block(c2 * D, c * D, D, D) = blk.transpose();
      }
    for (int64_t c = 0; c < K1; ++c) {
      H(c * D, c * D) += cfg_.l2_bias;
      for (int64_t j = 1; j < D; ++j) H(c * D + j, c * D + j) += cfg_.l2;
    }
    const Vec g = Eigen::Map<const Vec>(G.data(), P);
    // Newton's direction first; where the Hessian is nearly singular (a gate that has become sharp)
    // it can point nowhere useful, so the step is damped (Levenberg-Marquardt) until a backtracking
    // line search finds one that does not lower the objective.
    const Mat B0 = B_;
    bool accepted = false;
    double f_new = f;
    const double h_scale = 1e-12 + H.diagonal().cwiseAbs().maxCoeff();
    for (double damping = 0; damping <= 1e6 * h_scale && !accepted; damping = damping == 0 ? 1e-8 * h_scale : damping * 100) {
      Mat Hd = H;
      Hd.diagonal().array() += damping;
      const Vec delta = Hd.ldlt().solve(g);
      if (!delta.allFinite() || delta.dot(g) <= 0) continue;
      for (double t = 1.0; t > 1e-4; t *= 0.5) {
        B_ = B0 + t * Eigen::Map<const Mat>(delta.data(), D, K1);
        f_new = objective(X, Y, w);
        if (std::isfinite(f_new) && f_new >= f) {
          accepted = true;
          break;
        }
      }
    }
    if (!accepted) {
      B_ = B0;
      break;
    }
    const double gain = f_new - f;
    f = f_new;
    if (gain <= cfg_.tolerance * scale) break;
  }
}

std::unique_ptr<Expert> make_softmax_expert(const ExpertSpec& spec) {
  if (spec.task != Task::classification) throw Error("[classic] a 'logistic' expert is for classification (use 'linear' for regression)");
  SoftmaxExpertConfig cfg;
  cfg.l2 = numeric_option(spec, "logistic", "l2", cfg.l2);
  cfg.max_newton_steps = int(integer_option(spec, "logistic", "max_newton_steps", cfg.max_newton_steps, 1, 1000));
  return std::make_unique<SoftmaxExpert>(spec.inputs, std::max<int64_t>(spec.outputs, 2), cfg);
}

}  // namespace moe::classic
