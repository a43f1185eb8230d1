#include "classic/mixture.h"

#include <cmath>
#include <map>

#include "core/error.h"
#include "core/rng.h"

namespace moe::classic {

Mixture::Mixture(int64_t inputs, int64_t outputs, MixtureConfig cfg)
    : inputs_(inputs), outputs_(outputs), cfg_(std::move(cfg)) {
  if (cfg_.kinds.size() < 2) throw Error("[classic] a mixture needs at least 2 experts");
  SoftmaxExpertConfig g;
  g.l2 = cfg_.gate_l2;
  gate_ = std::make_unique<SoftmaxExpert>(inputs, int64_t(cfg_.kinds.size()), g);
  for (const auto& kind : cfg_.kinds)
    experts_.push_back(make_expert(kind, ExpertSpec{cfg_.task, inputs, outputs, cfg_.expert_options}));
}

Mat Mixture::gate(const Mat& X) const { return gate_->predict(X); }

Mat Mixture::log_joint(const Mat& X, const Mat& Y) const {
  const Mat Xb = with_bias(X);
  Mat lj = log_softmax_rows([&] {
    Mat z = Mat::Zero(X.rows(), num_experts());
    z.leftCols(num_experts() - 1) = Xb * gate_->coefficients();
    return z;
  }());
  for (int64_t k = 0; k < num_experts(); ++k) lj.col(k) += experts_[size_t(k)]->log_likelihood(X, Y);
  return lj;
}

Mat Mixture::posteriors(const Mat& X, const Mat& Y) const { return log_softmax_rows(log_joint(X, Y)).array().exp(); }

double Mixture::log_likelihood(const Mat& X, const Mat& Y) const {
  const Mat lj = log_joint(X, Y);
  double total = 0;
  for (int64_t i = 0; i < lj.rows(); ++i) {
    const double mx = lj.row(i).maxCoeff();
    total += mx + std::log((lj.row(i).array() - mx).exp().sum());
  }
  return total;
}

double Mixture::objective(const Mat& X, const Mat& Y) const {
  double p = gate_->penalty();
  for (const auto& e : experts_) p += e->penalty();
  return log_likelihood(X, Y) - p;
}

Mat Mixture::predict(const Mat& X) const {
  const Mat g = gate(X);
  Mat out = Mat::Zero(X.rows(), outputs_);
  for (int64_t k = 0; k < num_experts(); ++k)
    out += (experts_[size_t(k)]->predict(X).array().colwise() * g.col(k).array()).matrix();
  return out;
}

void Mixture::m_step(const Mat& X, const Mat& Y, const Mat& H) {
  for (int64_t k = 0; k < num_experts(); ++k) experts_[size_t(k)]->fit(X, Y, H.col(k));
  gate_->fit(X, H, Vec::Ones(X.rows()));
}

void Mixture::initialize(const Mat& X, const Mat& Y, uint64_t seed) {
  if (X.rows() == 0) throw Error("[classic] no samples to fit");
  if (X.cols() != inputs_ || Y.cols() != outputs_ || Y.rows() != X.rows())
    throw Error("[classic] data of " + std::to_string(X.cols()) + " inputs and " + std::to_string(Y.cols()) +
                " outputs for a mixture of " + std::to_string(inputs_) + " and " + std::to_string(outputs_));
  Rng rng(seed);
  Mat H(X.rows(), num_experts());
  for (int64_t i = 0; i < H.size(); ++i) H.data()[i] = 0.05 + rng.uniform();
  H.array().colwise() /= H.rowwise().sum().array();
  // Fresh parameters for every start.
  SoftmaxExpertConfig g;
  g.l2 = cfg_.gate_l2;
  gate_ = std::make_unique<SoftmaxExpert>(inputs_, num_experts(), g);
  for (size_t k = 0; k < experts_.size(); ++k)
    experts_[k] = make_expert(cfg_.kinds[k], ExpertSpec{cfg_.task, inputs_, outputs_, cfg_.expert_options});
  m_step(X, Y, H);
}

double Mixture::em_iteration(const Mat& X, const Mat& Y) {
  m_step(X, Y, posteriors(X, Y));
  return objective(X, Y);
}

std::vector<double> Mixture::fit_em(const Mat& X, const Mat& Y, const EmConfig& em) {
  if (em.restarts < 1 || em.max_iterations < 1) throw Error("[classic] EM needs at least one start and one iteration");
  std::vector<double> best_history;
  std::map<std::string, Mat> best;  // the parameters of the best start so far
  for (int r = 0; r < em.restarts; ++r) {
    initialize(X, Y, cfg_.seed + uint64_t(r) * 7919);
    std::vector<double> history{objective(X, Y)};
    for (int it = 0; it < em.max_iterations; ++it) {
      history.push_back(em_iteration(X, Y));
      if (history.back() - history[history.size() - 2] < em.tolerance * double(X.rows())) break;
    }
    if (std::isfinite(history.back()) && (best.empty() || history.back() > best_history.back())) {
      best_history = history;
      best = parameters();
    }
  }
  if (best.empty()) throw Error("[classic] EM reached no finite likelihood from any start (non-finite inputs or targets?)");
  set_parameters(best);
  return best_history;
}

}  // namespace moe::classic

namespace moe::classic {

std::map<std::string, Mat> Mixture::parameters() const {
  std::map<std::string, Mat> out;
  for (auto& [k, v] : gate_->parameters()) out["gate." + k] = v;
  for (int64_t e = 0; e < num_experts(); ++e)
    for (auto& [k, v] : experts_[size_t(e)]->parameters()) out["experts." + std::to_string(e) + "." + k] = v;
  return out;
}

void Mixture::set_parameters(const std::map<std::string, Mat>& p) {
  auto part = [&](const std::string& prefix) {
    std::map<std::string, Mat> sub;
    for (const auto& [k, v] : p)
      if (k.rfind(prefix, 0) == 0) sub[k.substr(prefix.size())] = v;
    return sub;
  };
  gate_->set_parameters(part("gate."));
  for (int64_t e = 0; e < num_experts(); ++e) experts_[size_t(e)]->set_parameters(part("experts." + std::to_string(e) + "."));
}

}  // namespace moe::classic
