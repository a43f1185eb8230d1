#include "classic/multitask.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"

namespace moe::classic {

Architecture parse_architecture(const std::string& name) {
  if (name == "mmoe") return Architecture::mmoe;
  if (name == "omoe") return Architecture::omoe;
  if (name == "shared_bottom") return Architecture::shared_bottom;
  throw Error("[classic] unknown multi-task architecture '" + name + "' (known: mmoe, omoe, shared_bottom)");
}

std::string architecture_name(Architecture a) {
  switch (a) {
    case Architecture::mmoe: return "mmoe";
    case Architecture::omoe: return "omoe";
    case Architecture::shared_bottom: return "shared_bottom";
  }
  return "?";
}

namespace {

void require_positive(int64_t v, const std::string& what) {
  if (v <= 0) throw Error("[classic] multi-task model: " + what + " must be positive (got " + std::to_string(v) + ")");
}

Mat relu(const Mat& A) { return A.cwiseMax(0.0); }

// Row-wise softmax of logits [n, k].
Mat softmax_rows(const Mat& Z) {
  Mat P = (Z.colwise() - Z.rowwise().maxCoeff()).array().exp();
  P.array().colwise() /= P.rowwise().sum().array();
  return P;
}

}  // namespace

MultiTaskModel::MultiTaskModel(MultiTaskConfig cfg) : cfg_(cfg) {
  require_positive(cfg_.inputs, "inputs");
  require_positive(cfg_.tasks, "tasks");
  require_positive(cfg_.outputs, "outputs");
  require_positive(cfg_.tower_hidden, "tower_hidden");
  if (cfg_.architecture == Architecture::shared_bottom) {
    require_positive(cfg_.bottom_hidden, "bottom_hidden (shared_bottom)");
    experts_.push_back(add_mlp("bottom", cfg_.inputs, cfg_.bottom_hidden, cfg_.outputs));
  } else {
    require_positive(cfg_.experts, "experts");
    require_positive(cfg_.expert_hidden, "expert_hidden");
    for (int64_t k = 0; k < cfg_.experts; ++k)
      experts_.push_back(add_mlp("experts." + std::to_string(k), cfg_.inputs, cfg_.expert_hidden, cfg_.outputs));
    const int64_t G = cfg_.architecture == Architecture::mmoe ? cfg_.tasks : 1;
    for (int64_t g = 0; g < G; ++g) {
      const std::string p = "gates." + std::to_string(g);
      gates_.push_back({params_.size(), params_.size() + 1});
      names_.push_back(p + ".w"), params_.push_back(Mat(cfg_.inputs, cfg_.experts));
      names_.push_back(p + ".b"), params_.push_back(Mat::Zero(1, cfg_.experts));
    }
  }
  for (int64_t t = 0; t < cfg_.tasks; ++t)
    towers_.push_back(add_mlp("towers." + std::to_string(t), cfg_.outputs, cfg_.tower_hidden, 1));

  // Weights (not biases) drawn from the seed in a fixed order: experts, towers, then gates. So one
  // seed gives MMoE and OMoE the same experts, towers and first gate (MMoE's other gates after),
  // and their comparison is paired by initialisation, not only by data.
  Rng rng(cfg_.seed);
  auto fill = [&](size_t i, double std) {
    for (int64_t j = 0; j < params_[i].size(); ++j) params_[i].data()[j] = std * rng.normal();
  };
  auto glorot = [](const Mat& W) { return std::sqrt(2.0 / double(W.rows() + W.cols())); };
  auto he = [](const Mat& W) { return std::sqrt(2.0 / double(W.rows())); };
  for (const auto& m : experts_) fill(m.w1, he(params_[m.w1])), fill(m.w2, glorot(params_[m.w2]));
  for (const auto& m : towers_) fill(m.w1, he(params_[m.w1])), fill(m.w2, glorot(params_[m.w2]));
  for (const auto& g : gates_) fill(g.w, glorot(params_[g.w]));
}

MultiTaskModel::Mlp MultiTaskModel::add_mlp(const std::string& prefix, int64_t in, int64_t hidden, int64_t out) {
  const size_t i = params_.size();
  for (const char* n : {".w1", ".b1", ".w2", ".b2"}) names_.push_back(prefix + n);
  params_.push_back(Mat(in, hidden));
  params_.push_back(Mat::Zero(1, hidden));
  params_.push_back(Mat(hidden, out));
  params_.push_back(Mat::Zero(1, out));
  return {i, i + 1, i + 2, i + 3};
}

// ---- forward ----

MultiTaskModel::MlpPass MultiTaskModel::mlp_forward(const Mlp& m, const Mat& X) const {
  MlpPass p;
  p.A = (X * params_[m.w1]).rowwise() + params_[m.b1].row(0);
  p.H = relu(p.A);
  p.O = (p.H * params_[m.w2]).rowwise() + params_[m.b2].row(0);
  return p;
}

MultiTaskModel::Pass MultiTaskModel::run(const Mat& X) const {
  Pass p;
  for (const auto& m : experts_) p.experts.push_back(mlp_forward(m, X));
  for (const auto& g : gates_) p.gates.push_back(softmax_rows((X * params_[g.w]).rowwise() + params_[g.b].row(0)));
  // Tower inputs: the bottom's output, or gate-weighted sums of the experts' (omoe: one sum for all).
  for (int64_t t = 0; t < cfg_.tasks; ++t) {
    if (gates_.empty()) {
      p.tower_in.push_back(p.experts[0].O);
    } else if (t > 0 && gate_of(t) == gate_of(t - 1)) {
      p.tower_in.push_back(p.tower_in.back());
    } else {
      const Mat& G = p.gates[gate_of(t)];
      Mat U = Mat::Zero(X.rows(), cfg_.outputs);
      for (size_t k = 0; k < experts_.size(); ++k) U += G.col(Eigen::Index(k)).asDiagonal() * p.experts[k].O;
      p.tower_in.push_back(std::move(U));
    }
    p.towers.push_back(mlp_forward(towers_[size_t(t)], p.tower_in.back()));
  }
  return p;
}

void MultiTaskModel::check_inputs(const Mat& X) const {
  if (X.cols() != cfg_.inputs)
    throw Error("[classic] multi-task model: X has " + std::to_string(X.cols()) + " columns, the model " +
                std::to_string(cfg_.inputs) + " inputs");
}

void MultiTaskModel::check_targets(const Mat& X, const Mat& Y) const {
  check_inputs(X);
  if (Y.rows() != X.rows() || Y.cols() != cfg_.tasks)
    throw Error("[classic] multi-task model: Y is " + std::to_string(Y.rows()) + " x " + std::to_string(Y.cols()) +
                ", expected " + std::to_string(X.rows()) + " x " + std::to_string(cfg_.tasks) + " (samples x tasks)");
  if (X.rows() == 0) throw Error("[classic] multi-task model: no samples");
}

Mat MultiTaskModel::forward(const Mat& X) const {
  check_inputs(X);
  const Pass p = run(X);
  Mat out(X.rows(), cfg_.tasks);
  for (int64_t t = 0; t < cfg_.tasks; ++t) out.col(t) = p.towers[size_t(t)].O.col(0);
  return out;
}

Mat MultiTaskModel::gates(const Mat& X) const {
  check_inputs(X);
  const Pass p = run(X);
  Mat out(X.rows(), Eigen::Index(p.gates.size()) * cfg_.experts);
  for (size_t g = 0; g < p.gates.size(); ++g) out.middleCols(Eigen::Index(g) * cfg_.experts, cfg_.experts) = p.gates[g];
  return out;
}

double MultiTaskModel::loss(const Mat& X, const Mat& Y) const {
  check_targets(X, Y);
  return (forward(X) - Y).squaredNorm() / double(X.rows());
}

// ---- backward ----

void MultiTaskModel::mlp_backward(const Mlp& m, const MlpPass& p, const Mat& X, const Mat& dO, std::vector<Mat>& grads,
                                  Mat* dX) const {
  grads[m.w2] += p.H.transpose() * dO;
  grads[m.b2] += dO.colwise().sum();
  const Mat dA = ((dO * params_[m.w2].transpose()).array() * (p.A.array() > 0).cast<double>()).matrix();
  grads[m.w1] += X.transpose() * dA;
  grads[m.b1] += dA.colwise().sum();
  if (dX) *dX = dA * params_[m.w1].transpose();
}

double MultiTaskModel::backward(const Mat& X, const Mat& Y, std::vector<Mat>& grads) const {
  grads.resize(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) grads[i] = Mat::Zero(params_[i].rows(), params_[i].cols());
  const Pass p = run(X);
  const double n = double(X.rows());
  double L = 0;
  // dL/d(tower input) per task, summed over the tasks that share it (omoe, shared_bottom).
  std::vector<Mat> dU(size_t(cfg_.tasks));
  for (int64_t t = 0; t < cfg_.tasks; ++t) {
    const Mat r = p.towers[size_t(t)].O - Y.col(t);  // [n, 1]
    L += r.squaredNorm() / n;
    mlp_backward(towers_[size_t(t)], p.towers[size_t(t)], p.tower_in[size_t(t)], (2.0 / n) * r, grads, &dU[size_t(t)]);
  }
  std::vector<Mat> dO(experts_.size(), Mat::Zero(X.rows(), cfg_.outputs));  // per expert [n, o]
  if (gates_.empty()) {
    for (const auto& d : dU) dO[0] += d;
  } else {
    std::vector<Mat> dG(gates_.size(), Mat::Zero(X.rows(), cfg_.experts));  // dL/d(gate weights) [n, E]
    for (int64_t t = 0; t < cfg_.tasks; ++t) {
      const size_t g = gate_of(t);
      // U = sum_k G_.k * O_k: dO_k += G_.k * dU, dG_.k += rowsum(dU .* O_k)
      for (size_t k = 0; k < experts_.size(); ++k) {
        dO[k] += p.gates[g].col(Eigen::Index(k)).asDiagonal() * dU[size_t(t)];
        dG[g].col(Eigen::Index(k)) += (dU[size_t(t)].array() * p.experts[k].O.array()).rowwise().sum().matrix();
      }
    }
    for (size_t g = 0; g < gates_.size(); ++g) {
      // Softmax: dZ = G .* (dG - rowsum(dG .* G)).
      const Mat& G = p.gates[g];
      const Vec inner = (dG[g].array() * G.array()).rowwise().sum();
      const Mat dZ = (G.array() * (dG[g].colwise() - inner).array()).matrix();
      grads[gates_[g].w] += X.transpose() * dZ;
      grads[gates_[g].b] += dZ.colwise().sum();
    }
  }
  for (size_t k = 0; k < experts_.size(); ++k) mlp_backward(experts_[k], p.experts[k], X, dO[k], grads, nullptr);
  return L;
}

std::map<std::string, Mat> MultiTaskModel::gradient(const Mat& X, const Mat& Y) const {
  check_targets(X, Y);
  std::vector<Mat> grads;
  backward(X, Y, grads);
  std::map<std::string, Mat> out;
  for (size_t i = 0; i < params_.size(); ++i) out[names_[i]] = std::move(grads[i]);
  return out;
}

// ---- parameters ----

std::map<std::string, Mat> MultiTaskModel::parameters() const {
  std::map<std::string, Mat> out;
  for (size_t i = 0; i < params_.size(); ++i) out[names_[i]] = params_[i];
  return out;
}

void MultiTaskModel::set_parameters(const std::map<std::string, Mat>& p) {
  // Checked in full before anything changes, so a bad map leaves the model as it was.
  std::vector<const Mat*> found;
  for (size_t i = 0; i < params_.size(); ++i) found.push_back(&parameter(p, names_[i], params_[i].rows(), params_[i].cols()));
  for (size_t i = 0; i < params_.size(); ++i) params_[i] = *found[i];
}

int64_t MultiTaskModel::parameter_count() const {
  int64_t c = 0;
  for (const auto& m : params_) c += m.size();
  return c;
}

// ---- training ----

std::vector<double> MultiTaskModel::train(const Mat& X, const Mat& Y, const TrainConfig& tc) {
  check_targets(X, Y);
  if (!(tc.learning_rate > 0) || tc.batch_size <= 0 || tc.epochs < 0)
    throw Error("[classic] multi-task training needs learning_rate > 0, batch_size > 0 and epochs >= 0");
  if (!(tc.beta1 >= 0 && tc.beta1 < 1) || !(tc.beta2 >= 0 && tc.beta2 < 1) || !(tc.epsilon > 0))
    throw Error("[classic] multi-task training: Adam needs 0 <= beta1, beta2 < 1 and epsilon > 0");
  if (!X.allFinite() || !Y.allFinite()) throw Error("[classic] multi-task training: X or Y holds NaN or Inf");
  const int64_t n = X.rows();
  std::vector<Mat> m1, m2, grads;  // Adam's first and second moments
  for (const auto& P : params_) m1.push_back(Mat::Zero(P.rows(), P.cols())), m2.push_back(Mat::Zero(P.rows(), P.cols()));
  Rng rng(tc.seed);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::vector<double> history;
  int64_t step = 0;
  for (int e = 0; e < tc.epochs; ++e) {
    for (int64_t i = n - 1; i > 0; --i) std::swap(order[size_t(i)], order[rng.below(uint64_t(i + 1))]);  // Fisher-Yates
    double sum = 0;
    for (int64_t start = 0; start < n; start += tc.batch_size) {
      const int64_t b = std::min(tc.batch_size, n - start);
      const std::vector<int64_t> rows(order.begin() + start, order.begin() + start + b);
      const Mat Xb = X(rows, Eigen::all), Yb = Y(rows, Eigen::all);
      sum += backward(Xb, Yb, grads) * double(b);
      ++step;
      const double c1 = 1 - std::pow(tc.beta1, double(step)), c2 = 1 - std::pow(tc.beta2, double(step));
      for (size_t i = 0; i < params_.size(); ++i) {
        m1[i] = tc.beta1 * m1[i] + (1 - tc.beta1) * grads[i];
        m2[i] = tc.beta2 * m2[i] + (1 - tc.beta2) * grads[i].cwiseAbs2();
        params_[i].array() -= tc.learning_rate * (m1[i].array() / c1) / ((m2[i].array() / c2).sqrt() + tc.epsilon);
      }
    }
    history.push_back(sum / double(n));
    if (tc.on_epoch) tc.on_epoch(e, history.back());
  }
  return history;
}

}  // namespace moe::classic
