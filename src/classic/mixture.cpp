#include "classic/mixture.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "classic/softmax_expert.h"
#include "core/error.h"
#include "core/rng.h"

namespace moe::classic {

Mixture::Mixture(int64_t inputs, int64_t outputs, MixtureConfig cfg)
    : inputs_(inputs), outputs_(outputs), cfg_(std::move(cfg)) {
  const int64_t E = int64_t(cfg_.kinds.size());
  if (E < 1) throw Error("[classic] a mixture needs at least one expert");
  if (cfg_.depth < 1 || cfg_.depth > 16) throw Error("[classic] the depth of a mixture's gates must be in [1, 16]");
  if (E > 1) {
    // E = b^depth for a whole branching b >= 2.
    for (int64_t b = 2; b <= E && branching_ == 1; ++b) {
      int64_t p = 1;
      for (int l = 0; l < cfg_.depth && p <= E; ++l) p *= b;
      if (p == E) branching_ = b;
    }
    if (branching_ == 1)
      throw Error("[classic] " + std::to_string(E) + " experts cannot fill a tree of gates of depth " + std::to_string(cfg_.depth) +
                  " (need b^depth experts, b >= 2)");
  } else if (cfg_.depth != 1) {
    throw Error("[classic] a single expert has no gates (depth must be 1)");
  }
  if (!cfg_.gate_options.is_object()) throw Error("[classic] gate options must be a JSON object");
  if (!cfg_.gate_options.contains("l2")) cfg_.gate_options["l2"] = cfg_.gate_l2;
  build(cfg_.seed);
}

void Mixture::build(uint64_t seed) {
  gates_.clear(), gate_level_.clear(), gate_index_.clear(), experts_.clear();
  if (branching_ > 1)
    for (int l = 0, count = 1; l < cfg_.depth; ++l, count *= int(branching_))
      for (int j = 0; j < count; ++j) {
        gates_.push_back(make_expert(cfg_.gate_kind, ExpertSpec{Task::classification, inputs_, branching_, cfg_.gate_options,
                                                                mix_seed(seed, 1000003 + gates_.size())}));
        gate_level_.push_back(l);
        gate_index_.push_back(j);
      }
  for (size_t k = 0; k < cfg_.kinds.size(); ++k)
    experts_.push_back(make_expert(cfg_.kinds[k], ExpertSpec{cfg_.task, inputs_, outputs_, cfg_.expert_options, mix_seed(seed, k)}));
}

int64_t Mixture::leaves_under(int level) const {
  int64_t n = 1;
  for (int l = level; l < cfg_.depth; ++l) n *= branching_;
  return n;
}

std::string Mixture::gate_prefix(int64_t g) const { return cfg_.depth == 1 ? "gate." : "gates." + std::to_string(g) + "."; }

Mat Mixture::log_gate(const Mat& X) const {
  Mat lg = Mat::Zero(X.rows(), num_experts());
  for (size_t g = 0; g < gates_.size(); ++g) {
    const Mat lp = gates_[g]->log_predict(X);  // [n, b]
    const int64_t below = leaves_under(gate_level_[g] + 1);
    for (int64_t c = 0; c < branching_; ++c)
      lg.middleCols((gate_index_[g] * branching_ + c) * below, below).colwise() += lp.col(c);
  }
  return lg;
}

Mat Mixture::gate(const Mat& X) const { return log_gate(X).array().exp(); }

Mat Mixture::log_joint(const Mat& X, const Mat& Y) const {
  Mat lj = log_gate(X);
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
  double p = 0;
  for (const auto& g : gates_) p += g->penalty();
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

void Mixture::gate_targets(const Mat& H, int64_t g, Mat& targets, Vec& weights) const {
  const int64_t below = leaves_under(gate_level_[size_t(g)] + 1);
  targets.resize(H.rows(), branching_);
  for (int64_t c = 0; c < branching_; ++c)
    targets.col(c) = H.middleCols((gate_index_[size_t(g)] * branching_ + c) * below, below).rowwise().sum();
  weights = targets.rowwise().sum();
  for (int64_t i = 0; i < H.rows(); ++i)
    targets.row(i) = weights[i] > 0 ? Vec(targets.row(i).transpose() / weights[i]) : Vec::Constant(branching_, 1.0 / double(branching_));
}

void Mixture::m_step(const Mat& X, const Mat& Y, const Mat& H) {
  for (int64_t k = 0; k < num_experts(); ++k) experts_[size_t(k)]->fit(X, Y, H.col(k));
  Mat T;
  Vec w;
  for (size_t g = 0; g < gates_.size(); ++g) {
    gate_targets(H, int64_t(g), T, w);
    gates_[g]->fit(X, T, w);
  }
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
  build(seed);  // fresh parameters for every start
  m_step(X, Y, H);
}

double Mixture::em_iteration(const Mat& X, const Mat& Y) {
  m_step(X, Y, posteriors(X, Y));
  return objective(X, Y);
}

std::vector<double> Mixture::fit_em(const Mat& X, const Mat& Y, const EmConfig& em, const Progress& progress) {
  if (em.restarts < 1 || em.max_iterations < 1) throw Error("[classic] EM needs at least one start and one iteration");
  std::vector<double> best_history;
  std::map<std::string, Mat> best;  // the parameters of the best start so far
  for (int r = 0; r < em.restarts; ++r) {
    initialize(X, Y, cfg_.seed + uint64_t(r) * 7919);
    std::vector<double> history{objective(X, Y)};
    for (int it = 0; it < em.max_iterations; ++it) {
      history.push_back(em_iteration(X, Y));
      if (progress) progress(r, it + 1, history.back());
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

bool Mixture::differentiable() const {
  for (const auto& g : gates_)
    if (!g->differentiable()) return false;
  for (const auto& e : experts_)
    if (!e->differentiable()) return false;
  return true;
}

Vec Mixture::flat_parameters() const {
  std::vector<Vec> parts;
  int64_t size = 0;
  for (const auto& g : gates_) parts.push_back(g->flat_parameters()), size += parts.back().size();
  for (const auto& e : experts_) parts.push_back(e->flat_parameters()), size += parts.back().size();
  Vec out(size);
  int64_t o = 0;
  for (const auto& p : parts) out.segment(o, p.size()) = p, o += p.size();
  return out;
}

void Mixture::set_flat_parameters(const Vec& theta) {
  int64_t o = 0;
  auto take = [&](Expert& x) {
    const int64_t n = x.flat_size();
    if (o + n > theta.size()) throw Error("[classic] flat parameters too short for the mixture");
    x.set_flat_parameters(theta.segment(o, n));
    o += n;
  };
  for (auto& g : gates_) take(*g);
  for (auto& e : experts_) take(*e);
  if (o != theta.size()) throw Error("[classic] flat parameters too long for the mixture");
}

Vec Mixture::flat_gradient(const Mat& X, const Mat& Y, double row_scale) const {
  // d/dtheta sum_i log sum_e exp(lj_ie) = sum_i sum_e h_ie d lj_ie / dtheta: each part's weighted
  // log-likelihood gradient at the posteriors (the M-step objective's gradient).
  const Mat H = posteriors(X, Y);
  std::vector<Vec> parts;
  int64_t size = 0;
  Mat T;
  Vec w;
  for (size_t g = 0; g < gates_.size(); ++g) {
    gate_targets(H, int64_t(g), T, w);
    parts.push_back(gates_[g]->flat_gradient(X, T, row_scale * w)), size += parts.back().size();
  }
  for (int64_t k = 0; k < num_experts(); ++k)
    parts.push_back(experts_[size_t(k)]->flat_gradient(X, Y, row_scale * H.col(k))), size += parts.back().size();
  Vec out(size);
  int64_t o = 0;
  for (const auto& p : parts) out.segment(o, p.size()) = p, o += p.size();
  return out;
}

std::vector<double> Mixture::fit_backprop(const Mat& X, const Mat& Y, const BackpropConfig& bp, const Progress& progress) {
  if (bp.restarts < 1 || bp.epochs < 1 || bp.batch_size < 1 || bp.patience < 1 || !(bp.learning_rate > 0))
    throw Error("[classic] backpropagation needs epochs, restarts, patience and a batch size >= 1 and a learning rate > 0");
  for (const auto& g : gates_)
    if (!g->differentiable()) throw Error("[classic] the gate kind '" + cfg_.gate_kind + "' is not differentiable: train with EM");
  for (size_t k = 0; k < experts_.size(); ++k)
    if (!experts_[k]->differentiable())
      throw Error("[classic] expert " + std::to_string(k) + " ('" + cfg_.kinds[k] + "') is not differentiable: train with EM");
  const int64_t n = X.rows(), B = std::min(bp.batch_size, std::max<int64_t>(n, 1));
  std::vector<double> best_history;
  std::map<std::string, Mat> best;
  for (int r = 0; r < bp.restarts; ++r) {
    initialize(X, Y, cfg_.seed + uint64_t(r) * 7919);
    Vec theta = flat_parameters(), m1 = Vec::Zero(theta.size()), m2 = Vec::Zero(theta.size());
    const double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
    int64_t step = 0;
    std::vector<double> history{objective(X, Y)};
    double run_best = history[0];
    Vec run_best_theta = theta;
    int stale = 0;
    Rng rng(mix_seed(cfg_.seed, 0xbac4 + uint64_t(r)));
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), int64_t(0));
    for (int epoch = 0; epoch < bp.epochs; ++epoch) {
      for (int64_t i = n - 1; i > 0; --i) std::swap(order[size_t(i)], order[rng.next_u64() % uint64_t(i + 1)]);
      for (int64_t start = 0; start < n; start += B) {
        const int64_t rows = std::min(B, n - start);
        Mat Xb(rows, X.cols()), Yb(rows, Y.cols());
        for (int64_t i = 0; i < rows; ++i) Xb.row(i) = X.row(order[size_t(start + i)]), Yb.row(i) = Y.row(order[size_t(start + i)]);
        // The batch stands for all n rows; the penalties count once.
        const Vec g = flat_gradient(Xb, Yb, double(n) / double(rows));
        ++step;
        m1 = beta1 * m1 + (1 - beta1) * g;
        m2 = beta2 * m2 + (1 - beta2) * g.cwiseAbs2();
        const double c1 = 1 - std::pow(beta1, double(step)), c2 = 1 - std::pow(beta2, double(step));
        theta += bp.learning_rate * ((m1 / c1).array() / ((m2 / c2).array().sqrt() + eps)).matrix();  // ascent
        set_flat_parameters(theta);
        theta = flat_parameters();  // kinds may clamp (variance floors)
      }
      history.push_back(objective(X, Y));
      if (progress) progress(r, epoch + 1, history.back());
      if (std::isfinite(history.back()) && history.back() > run_best + bp.tolerance * double(n)) {
        run_best = history.back(), run_best_theta = theta, stale = 0;
      } else if (++stale >= bp.patience) {
        break;  // no gain for a while: converged (or diverging)
      }
    }
    set_flat_parameters(run_best_theta);
    if (std::isfinite(run_best) && (best.empty() || run_best > *std::max_element(best_history.begin(), best_history.end()))) {
      best_history = history;
      best = parameters();
    }
  }
  if (best.empty()) throw Error("[classic] backpropagation reached no finite likelihood from any start (non-finite inputs or targets?)");
  set_parameters(best);
  return best_history;
}

std::map<std::string, Mat> Mixture::parameters() const {
  std::map<std::string, Mat> out;
  for (size_t g = 0; g < gates_.size(); ++g)
    for (auto& [k, v] : gates_[g]->parameters()) out[gate_prefix(int64_t(g)) + k] = v;
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
  for (size_t g = 0; g < gates_.size(); ++g) gates_[g]->set_parameters(part(gate_prefix(int64_t(g))));
  for (int64_t e = 0; e < num_experts(); ++e) experts_[size_t(e)]->set_parameters(part("experts." + std::to_string(e) + "."));
}

}  // namespace moe::classic
