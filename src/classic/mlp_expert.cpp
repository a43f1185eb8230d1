#include "classic/mlp_expert.h"

#include <cmath>
#include <numbers>

#include "classic/lbfgs.h"
#include "classic/softmax_expert.h"
#include "core/error.h"
#include "core/rng.h"

namespace moe::classic {

MlpExpert::MlpExpert(Task task, int64_t inputs, int64_t outputs, MlpExpertConfig cfg, uint64_t seed)
    : task_(task), cfg_(cfg) {
  if (cfg_.hidden < 1 || cfg_.hidden > 4096) throw Error("[classic] mlp expert: hidden must be in [1, 4096]");
  if (!(cfg_.l2 >= 0) || cfg_.fit_iterations < 1 || !(cfg_.min_variance > 0))
    throw Error("[classic] mlp expert: l2 must be >= 0, fit_iterations >= 1 and min_variance > 0");
  if (task_ == Task::classification && outputs < 2) throw Error("[classic] a classifying mlp needs at least 2 classes");
  // Glorot-scaled normal weights: the random start breaks the symmetry between hidden units.
  Rng rng(seed);
  W1_.resize(inputs, cfg_.hidden), W2_.resize(cfg_.hidden, outputs);
  for (int64_t i = 0; i < W1_.size(); ++i) W1_.data()[i] = rng.normal() * std::sqrt(1.0 / double(inputs));
  for (int64_t i = 0; i < W2_.size(); ++i) W2_.data()[i] = rng.normal() * std::sqrt(1.0 / double(cfg_.hidden));
  b1_ = Vec::Zero(cfg_.hidden), b2_ = Vec::Zero(outputs), var_ = Vec::Ones(outputs);
}

namespace {
// Concatenates matrices column-major (the flat layout), then tail when not null.
template <class... Parts>
Vec pack(const Vec* tail, const Parts&... parts) {
  Vec out((parts.size() + ... + (tail ? tail->size() : 0)));
  int64_t o = 0;
  ((out.segment(o, parts.size()) = Eigen::Map<const Vec>(parts.data(), parts.size()), o += parts.size()), ...);
  if (tail) out.tail(tail->size()) = *tail;
  return out;
}
}  // namespace

Mat MlpExpert::outputs_of(const Mat& X, Mat* hidden) const {
  Mat H = ((X * W1_).rowwise() + b1_.transpose()).array().tanh();  // [n, h]
  Mat Z = (H * W2_).rowwise() + b2_.transpose();                     // [n, m]
  if (hidden) *hidden = std::move(H);
  return Z;
}

Mat MlpExpert::predict(const Mat& X) const {
  const Mat Z = outputs_of(X, nullptr);
  return task_ == Task::classification ? Mat(log_softmax_rows(Z).array().exp()) : Z;
}

Mat MlpExpert::log_predict(const Mat& X) const {
  const Mat Z = outputs_of(X, nullptr);
  return task_ == Task::classification ? log_softmax_rows(Z) : Mat(Z.array().log());
}

Vec MlpExpert::log_likelihood(const Mat& X, const Mat& Y) const {
  const Mat Z = outputs_of(X, nullptr);
  if (task_ == Task::classification) return (Y.array() * log_softmax_rows(Z).array()).rowwise().sum();
  Vec ll = Vec::Zero(X.rows());
  for (int64_t c = 0; c < Z.cols(); ++c)
    ll.array() += -0.5 * std::log(2 * std::numbers::pi * var_[c]) - (Y.col(c) - Z.col(c)).array().square() / (2 * var_[c]);
  return ll;
}

double MlpExpert::penalty() const { return 0.5 * cfg_.l2 * (W1_.squaredNorm() + W2_.squaredNorm()); }

double MlpExpert::objective(const Mat& X, const Mat& Y, const Vec& w, Vec* grad) const {
  Mat H;
  const Mat Z = outputs_of(X, &H);
  const int64_t m = Z.cols();
  double value;
  Mat dZ;  // d objective / d Z, [n, m]
  Vec dlogvar;
  if (task_ == Task::classification) {
    const Mat lp = log_softmax_rows(Z);
    value = w.dot((Y.array() * lp.array()).rowwise().sum().matrix());
    const Vec s = Y.rowwise().sum();
    dZ = w.asDiagonal() * (Y - Mat(lp.array().exp().colwise() * s.array()));
  } else {
    const Mat R = Y - Z;
    value = 0;
    dlogvar = Vec::Zero(m);
    for (int64_t c = 0; c < m; ++c) {
      value += w.dot((-0.5 * std::log(2 * std::numbers::pi * var_[c]) - R.col(c).array().square() / (2 * var_[c])).matrix());
      dlogvar[c] = 0.5 * (w.array() * (R.col(c).array().square() / var_[c] - 1)).sum();
    }
    dZ = w.asDiagonal() * R * var_.cwiseInverse().asDiagonal();
  }
  value -= penalty();
  if (grad) {
    // Backward through Z = H W2 + b2, H = tanh(X W1 + b1).
    const Mat gW2 = H.transpose() * dZ - cfg_.l2 * W2_;
    const Vec gb2 = dZ.colwise().sum().transpose();
    const Mat dA = ((dZ * W2_.transpose()).array() * (1 - H.array().square())).matrix();
    const Mat gW1 = X.transpose() * dA - cfg_.l2 * W1_;
    const Vec gb1 = dA.colwise().sum().transpose();
    *grad = pack(task_ == Task::regression ? &dlogvar : nullptr, gW1, gb1, gW2, gb2);
  }
  return value;
}

Vec MlpExpert::flat_parameters() const {
  const Vec logvar = var_.array().log();
  return pack(task_ == Task::regression ? &logvar : nullptr, W1_, b1_, W2_, b2_);
}

int64_t MlpExpert::flat_size() const {
  return W1_.size() + b1_.size() + W2_.size() + b2_.size() + (task_ == Task::regression ? var_.size() : 0);
}

void MlpExpert::set_flat_parameters(const Vec& t) {
  MOE_ASSERT(t.size() == flat_size());
  int64_t o = 0;
  W1_ = Eigen::Map<const Mat>(t.data() + o, W1_.rows(), W1_.cols()), o += W1_.size();
  b1_ = t.segment(o, b1_.size()), o += b1_.size();
  W2_ = Eigen::Map<const Mat>(t.data() + o, W2_.rows(), W2_.cols()), o += W2_.size();
  b2_ = t.segment(o, b2_.size()), o += b2_.size();
  if (task_ == Task::regression) var_ = t.segment(o, var_.size()).array().exp().max(cfg_.min_variance);
}

Vec MlpExpert::flat_gradient(const Mat& X, const Mat& Y, const Vec& w) const {
  Vec g;
  objective(X, Y, w, &g);
  return g;
}

void MlpExpert::fit(const Mat& X, const Mat& Y, const Vec& w) {
  MOE_ASSERT(X.rows() == Y.rows() && X.rows() == w.size() && X.cols() == W1_.rows() && Y.cols() == W2_.cols());
  Vec theta = flat_parameters();
  MlpExpert probe = *this;
  lbfgs_maximize(
      [&](const Vec& t, Vec* g) {
        probe.set_flat_parameters(t);
        return probe.objective(X, Y, w, g);
      },
      theta, {cfg_.fit_iterations, 8, 1e-10});
  set_flat_parameters(theta);
}

std::map<std::string, Mat> MlpExpert::parameters() const {
  std::map<std::string, Mat> p{{"w1", W1_}, {"b1", b1_.transpose()}, {"w2", W2_}, {"b2", b2_.transpose()}};
  if (task_ == Task::regression) p["variance"] = var_;
  return p;
}

void MlpExpert::set_parameters(const std::map<std::string, Mat>& p) {
  const Mat& w1 = parameter(p, "w1", W1_.rows(), W1_.cols());
  const Mat& b1 = parameter(p, "b1", 1, b1_.size());
  const Mat& w2 = parameter(p, "w2", W2_.rows(), W2_.cols());
  const Mat& b2 = parameter(p, "b2", 1, b2_.size());
  Vec var = var_;
  if (task_ == Task::regression) {
    var = parameter(p, "variance", var_.size(), 1).col(0);
    if ((var.array() <= 0).any()) throw Error("[classic] mlp expert: a noise variance is not positive");
  }
  W1_ = w1, b1_ = b1.row(0).transpose(), W2_ = w2, b2_ = b2.row(0).transpose(), var_ = var;
}

std::unique_ptr<Expert> make_mlp_expert(const ExpertSpec& spec) {
  MlpExpertConfig cfg;
  cfg.hidden = integer_option(spec, "mlp", "hidden", cfg.hidden, 1, 4096);
  cfg.l2 = numeric_option(spec, "mlp", "l2", cfg.l2);
  cfg.fit_iterations = int(integer_option(spec, "mlp", "fit_iterations", cfg.fit_iterations, 1, 100000));
  cfg.min_variance = numeric_option(spec, "mlp", "min_variance", cfg.min_variance);
  return std::make_unique<MlpExpert>(spec.task, spec.inputs, spec.outputs, cfg, spec.seed);
}

}  // namespace moe::classic
