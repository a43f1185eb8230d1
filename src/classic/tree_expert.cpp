#include "classic/tree_expert.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>

#include "core/error.h"

namespace moe::classic {

TreeExpert::TreeExpert(Task task, int64_t inputs, int64_t outputs, TreeExpertConfig cfg)
    : task_(task), inputs_(inputs), outputs_(outputs), cfg_(cfg) {
  if (cfg_.max_depth < 0 || cfg_.max_depth > 30) throw Error("[classic] tree expert: max_depth must be in [0, 30]");
  if (!(cfg_.min_leaf_weight >= 0) || !(cfg_.prior > 0) || !(cfg_.min_variance > 0))
    throw Error("[classic] tree expert: min_leaf_weight must be >= 0, prior and min_variance > 0");
  if (task_ == Task::classification && outputs_ < 2) throw Error("[classic] a classifying tree needs at least 2 classes");
  // One leaf: the mean 0 or uniform classes.
  feature_ = {-1}, left_ = {-1}, right_ = {-1}, threshold_ = {0.0};
  leaf_ = Mat::Constant(1, outputs_, task_ == Task::classification ? 1.0 / double(outputs_) : 0.0);
  var_ = Vec::Ones(outputs_);
}

// Greedy top-down growth: at each node the split of largest impurity decrease, where the impurity is
// the weighted squared error (regression) or the weighted entropy in nats (classification), i.e.
// minus the log-likelihood each side would reach with its own leaf.
struct TreeExpert::Grow {
  const Mat& X;
  const Mat& Y;
  const Vec& w;
  TreeExpert& t;

  struct Sums {
    double W = 0;
    Vec s, q;  // per output: sum w y, sum w y^2 (regression) / class weight (classification)
    explicit Sums(int64_t m) : s(Vec::Zero(m)), q(Vec::Zero(m)) {}
    void add(const Mat& Y, int64_t i, double wi, double sign) {
      W += sign * wi;
      s += sign * wi * Y.row(i).transpose();
      q += sign * wi * Y.row(i).transpose().cwiseAbs2();
    }
  };

  double impurity(const Sums& a) const {
    if (a.W <= 0) return 0;
    if (t.task_ == Task::regression) return std::max(0.0, (a.q.array() - a.s.array().square() / a.W).sum());
    double h = 0;
    for (int64_t c = 0; c < a.s.size(); ++c)
      if (a.s[c] > 0) h -= a.s[c] * std::log(a.s[c] / a.W);
    return h;
  }

  int64_t node(std::vector<int64_t>& idx, int depth) {
    const int64_t id = t.num_nodes();
    t.feature_.push_back(-1), t.left_.push_back(-1), t.right_.push_back(-1), t.threshold_.push_back(0.0);
    const int64_t m = Y.cols();
    Sums all(m);
    for (int64_t i : idx) all.add(Y, i, w[i], 1);
    if (depth >= t.cfg_.max_depth || all.W < 2 * t.cfg_.min_leaf_weight || all.W <= 0) return id;
    const double parent = impurity(all);
    double best_gain = 1e-12 * (1 + parent);
    int64_t best_feature = -1;
    double best_threshold = 0;
    std::vector<int64_t> order = idx;
    for (int64_t f = 0; f < X.cols(); ++f) {
      std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return X(a, f) < X(b, f); });
      Sums left(m), right = all;
      for (size_t k = 0; k + 1 < order.size(); ++k) {
        const int64_t i = order[k];
        left.add(Y, i, w[i], 1);
        right.add(Y, i, w[i], -1);
        const double a = X(i, f), b = X(order[k + 1], f);
        if (!(a < b) || left.W < t.cfg_.min_leaf_weight || right.W < t.cfg_.min_leaf_weight) continue;
        const double gain = parent - impurity(left) - impurity(right);
        if (gain <= best_gain) continue;
        // The threshold as the file will hold it (F32): it must still separate a from b.
        const double thr = double(float(0.5 * (a + b)));
        if (!(a <= thr && thr < b)) continue;
        best_gain = gain, best_feature = f, best_threshold = thr;
      }
    }
    if (best_feature < 0) return id;
    std::vector<int64_t> l, r;
    for (int64_t i : idx) (X(i, best_feature) <= best_threshold ? l : r).push_back(i);
    idx.clear();
    idx.shrink_to_fit();
    t.feature_[size_t(id)] = best_feature;
    t.threshold_[size_t(id)] = best_threshold;
    const int64_t li = node(l, depth + 1);
    t.left_[size_t(id)] = li;
    const int64_t ri = node(r, depth + 1);
    t.right_[size_t(id)] = ri;
    return id;
  }
};

int64_t TreeExpert::leaf_of(const double* x, int64_t stride) const {
  int64_t n = 0;
  while (feature_[size_t(n)] >= 0) n = x[feature_[size_t(n)] * stride] <= threshold_[size_t(n)] ? left_[size_t(n)] : right_[size_t(n)];
  return n;
}

void TreeExpert::fit_leaves(const Mat& X, const Mat& Y, const Vec& w) {
  const int64_t N = num_nodes(), m = outputs_;
  Vec W = Vec::Zero(N);
  Mat S = Mat::Zero(N, m);
  std::vector<int64_t> leaf(size_t(X.rows()));
  for (int64_t i = 0; i < X.rows(); ++i) {
    leaf[size_t(i)] = leaf_of(&X(i, 0), X.rows());
    W[leaf[size_t(i)]] += w[i];
    S.row(leaf[size_t(i)]) += w[i] * Y.row(i);
  }
  leaf_ = Mat::Zero(N, m);
  if (task_ == Task::classification) {
    for (int64_t n = 0; n < N; ++n)
      if (feature_[size_t(n)] < 0) leaf_.row(n) = (S.row(n).array() + cfg_.prior) / (W[n] + cfg_.prior * double(m));
    return;
  }
  const double sw = w.sum();
  const Vec mean = sw > 0 ? Vec(S.colwise().sum().transpose() / sw) : Vec::Zero(m);
  for (int64_t n = 0; n < N; ++n)
    if (feature_[size_t(n)] < 0) leaf_.row(n) = W[n] > 0 ? Vec(S.row(n).transpose() / W[n]) : mean;
  Vec ss = Vec::Zero(m);
  for (int64_t i = 0; i < X.rows(); ++i) ss += w[i] * (Y.row(i) - leaf_.row(leaf[size_t(i)])).transpose().cwiseAbs2();
  for (int64_t c = 0; c < m; ++c) var_[c] = std::max(cfg_.min_variance, sw > 0 ? ss[c] / sw : 1.0);
}

double TreeExpert::weighted_objective(const Mat& X, const Mat& Y, const Vec& w) const {
  return w.dot(log_likelihood(X, Y)) - penalty();
}

void TreeExpert::fit(const Mat& X, const Mat& Y, const Vec& w) {
  MOE_ASSERT(X.rows() == Y.rows() && X.rows() == w.size() && X.cols() == inputs_ && Y.cols() == outputs_);
  TreeExpert previous = *this;
  previous.fit_leaves(X, Y, w);
  feature_.clear(), left_.clear(), right_.clear(), threshold_.clear();
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < X.rows(); ++i)
    if (w[i] > 0) idx.push_back(i);
  Grow{X, Y, w, *this}.node(idx, 0);
  fit_leaves(X, Y, w);
  if (previous.weighted_objective(X, Y, w) > weighted_objective(X, Y, w)) *this = std::move(previous);
}

Mat TreeExpert::predict(const Mat& X) const {
  Mat out(X.rows(), outputs_);
  for (int64_t i = 0; i < X.rows(); ++i) out.row(i) = leaf_.row(leaf_of(&X(i, 0), X.rows()));
  return out;
}

Vec TreeExpert::log_likelihood(const Mat& X, const Mat& Y) const {
  MOE_ASSERT(Y.rows() == X.rows() && Y.cols() == outputs_);
  const Mat P = predict(X);
  if (task_ == Task::classification) return (Y.array() * P.array().log()).rowwise().sum();
  Vec ll = Vec::Zero(X.rows());
  for (int64_t c = 0; c < outputs_; ++c)
    ll.array() += -0.5 * std::log(2 * std::numbers::pi * var_[c]) - (Y.col(c) - P.col(c)).array().square() / (2 * var_[c]);
  return ll;
}

double TreeExpert::penalty() const {
  if (task_ != Task::classification) return 0;
  double p = 0;
  for (int64_t n = 0; n < num_nodes(); ++n)
    if (feature_[size_t(n)] < 0) p -= cfg_.prior * leaf_.row(n).array().log().sum();
  return p;
}

int64_t TreeExpert::num_leaves() const { return std::count(feature_.begin(), feature_.end(), int64_t(-1)); }

int TreeExpert::depth() const {
  std::vector<int> d(feature_.size(), 0);
  int out = 0;
  for (size_t n = 0; n < feature_.size(); ++n) {
    out = std::max(out, d[n]);
    if (feature_[n] >= 0) d[size_t(left_[n])] = d[size_t(right_[n])] = d[n] + 1;
  }
  return out;
}

std::map<std::string, Mat> TreeExpert::parameters() const {
  Mat nodes(num_nodes(), 4);
  for (int64_t n = 0; n < num_nodes(); ++n)
    nodes.row(n) << double(feature_[size_t(n)]), threshold_[size_t(n)], double(left_[size_t(n)]), double(right_[size_t(n)]);
  std::map<std::string, Mat> out{{"nodes", nodes}, {"leaf", leaf_}};
  if (task_ == Task::regression) out["variance"] = var_;
  return out;
}

void TreeExpert::set_parameters(const std::map<std::string, Mat>& p) {
  auto it = p.find("nodes");
  if (it == p.end()) throw Error("[classic] tree expert: parameter 'nodes' is missing");
  const int64_t N = it->second.rows();
  if (N < 1 || N > (int64_t(1) << 31)) throw Error("[classic] tree expert: 'nodes' has no rows");
  const Mat& nodes = parameter(p, "nodes", N, 4);
  const Mat& leaf = parameter(p, "leaf", N, outputs_);
  auto index = [&](double v, int64_t lo, int64_t hi, const char* what, int64_t n) {
    if (!(v == std::floor(v) && v >= double(lo) && v < double(hi)))
      throw Error("[classic] tree expert: node " + std::to_string(n) + " has an invalid " + what + " (" + std::to_string(v) + ")");
    return int64_t(v);
  };
  const auto count = static_cast<size_t>(N);
  std::vector<int64_t> f(count), l(count, -1), r(count, -1), parents(count, 0);
  std::vector<double> thr(count);
  for (int64_t n = 0; n < N; ++n) {
    f[size_t(n)] = index(nodes(n, 0), -1, inputs_, "feature", n);
    thr[size_t(n)] = nodes(n, 1);
    if (f[size_t(n)] < 0) continue;
    // Children after their parent: the walk from the root always ends at a leaf.
    l[size_t(n)] = index(nodes(n, 2), n + 1, N, "left child", n);
    r[size_t(n)] = index(nodes(n, 3), n + 1, N, "right child", n);
    ++parents[size_t(l[size_t(n)])], ++parents[size_t(r[size_t(n)])];
  }
  for (int64_t n = 1; n < N; ++n)
    if (parents[size_t(n)] != 1) throw Error("[classic] tree expert: node " + std::to_string(n) + " is not the child of exactly one node");
  for (int64_t n = 0; n < N; ++n) {
    if (f[size_t(n)] >= 0 || task_ != Task::classification) continue;
    if ((leaf.row(n).array() <= 0).any() || std::abs(leaf.row(n).sum() - 1) > 1e-4)
      throw Error("[classic] tree expert: leaf " + std::to_string(n) + " does not hold class probabilities");
  }
  Vec var = var_;
  if (task_ == Task::regression) {
    var = parameter(p, "variance", outputs_, 1).col(0);
    if ((var.array() <= 0).any()) throw Error("[classic] tree expert: a noise variance is not positive");
  }
  feature_ = f, left_ = l, right_ = r, threshold_ = thr, leaf_ = leaf, var_ = var;
}

std::unique_ptr<Expert> make_tree_expert(const ExpertSpec& spec) {
  TreeExpertConfig cfg;
  cfg.max_depth = int(integer_option(spec, "tree", "max_depth", cfg.max_depth, 0, 30));
  cfg.min_leaf_weight = numeric_option(spec, "tree", "min_leaf_weight", cfg.min_leaf_weight);
  cfg.prior = numeric_option(spec, "tree", "prior", cfg.prior);
  cfg.min_variance = numeric_option(spec, "tree", "min_variance", cfg.min_variance);
  return std::make_unique<TreeExpert>(spec.task, spec.inputs, spec.outputs, cfg);
}

}  // namespace moe::classic
