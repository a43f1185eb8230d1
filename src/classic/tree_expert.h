#pragma once
// Decision-tree expert: CART grown greedily on weighted samples (the E-step's posteriors), for both
// tasks. Regression: a mean per leaf and one Gaussian noise variance per output; classification:
// smoothed class frequencies per leaf (a Dirichlet prior, so a leaf never gives probability 0).
//
// EM needs every M-step to raise the expert's penalised weighted log-likelihood; a greedy regrowth
// need not beat the previous tree on the new weights, so fit() also refits the previous tree's leaves
// on them and keeps whichever of the two scores higher.
//
// Saved as three matrices (docs/classic.md, "Trees"): "nodes" [N, 4] rows (feature, threshold, left,
// right), feature -1 for a leaf; x goes left when x[feature] <= threshold; children have higher
// indices than their parent, node 0 is the root. "leaf" [N, m]: the leaf's mean or class
// probabilities (rows of inner nodes unused). Regression adds "variance" [m, 1]. Thresholds are
// rounded to float when the tree is grown, so a tree saved as F32 decides exactly as it did in training.
#include <vector>

#include "classic/expert.h"

namespace moe::classic {

struct TreeExpertConfig {
  int max_depth = 5;
  double min_leaf_weight = 2.0;  // a split must leave at least this much sample weight on each side
  double prior = 0.5;            // classification: Dirichlet pseudo-count per class and leaf
  double min_variance = 1e-9;    // regression: floor of the noise variance
};

class TreeExpert : public Expert {
 public:
  TreeExpert(Task task, int64_t inputs, int64_t outputs, TreeExpertConfig cfg = {});
  std::string kind() const override { return "tree"; }
  void fit(const Mat& X, const Mat& Y, const Vec& w) override;
  Mat predict(const Mat& X) const override;
  Vec log_likelihood(const Mat& X, const Mat& Y) const override;
  // Classification: -prior * sum over leaves and classes of log p (the Dirichlet prior's log density
  // up to a constant), which the smoothed frequencies maximise against. Regression: 0.
  double penalty() const override;
  std::map<std::string, Mat> parameters() const override;
  void set_parameters(const std::map<std::string, Mat>& p) override;

  int64_t num_nodes() const { return int64_t(feature_.size()); }
  int64_t num_leaves() const;
  int depth() const;

 private:
  struct Grow;  // the growing procedure (tree_expert.cpp)
  int64_t leaf_of(const double* x, int64_t stride) const;
  // Leaf values (and variances) for the current structure from weighted data.
  void fit_leaves(const Mat& X, const Mat& Y, const Vec& w);
  double weighted_objective(const Mat& X, const Mat& Y, const Vec& w) const;

  Task task_;
  int64_t inputs_, outputs_;
  TreeExpertConfig cfg_;
  std::vector<int64_t> feature_, left_, right_;  // per node; feature -1 marks a leaf
  std::vector<double> threshold_;
  Mat leaf_;  // [nodes, m]
  Vec var_;   // [m] (regression)
};

std::unique_ptr<Expert> make_tree_expert(const ExpertSpec& spec);

}  // namespace moe::classic
