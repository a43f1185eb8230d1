// The tree expert's weighted CART fit against brute force: a stump's split, leaf values and variance
// equal those found by trying every (feature, threshold) pair with plain loops; integer weights act as
// repeated samples; a refit never lowers the weighted objective; saved trees decide the same in F32;
// corrupt trees are refused.
#include "classic/tree_expert.h"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/rng.h"
#include "weighted_data.h"

namespace moe::classic {
namespace {

struct Split {
  int64_t feature = -1;
  double lo = 0, hi = 0;  // the threshold lies in [lo, hi)
  double cost = std::numeric_limits<double>::infinity();
};

// Every split of every feature between two distinct values; cost = the sides' impurity
// (regression: weighted squared error about the weighted mean; classification: weighted entropy).
Split brute_force_stump(const Mat& X, const Mat& Y, const Vec& w, bool classify, double min_leaf) {
  Split best;
  const int64_t n = X.rows();
  for (int64_t f = 0; f < X.cols(); ++f)
    for (int64_t a = 0; a < n; ++a) {
      double lo = X(a, f), hi = std::numeric_limits<double>::infinity();
      for (int64_t b = 0; b < n; ++b)
        if (X(b, f) > lo && X(b, f) < hi) hi = X(b, f);
      if (!std::isfinite(hi)) continue;
      double cost = 0, Wl = 0, Wr = 0;
      for (int side = 0; side < 2; ++side) {
        double W = 0;
        std::vector<double> s(size_t(Y.cols()), 0.0);
        for (int64_t i = 0; i < n; ++i)
          if ((X(i, f) <= lo) == (side == 0)) {
            W += w[i];
            for (int64_t c = 0; c < Y.cols(); ++c) s[size_t(c)] += w[i] * Y(i, c);
          }
        (side == 0 ? Wl : Wr) = W;
        if (W <= 0) continue;
        if (classify) {
          for (double sc : s)
            if (sc > 0) cost -= sc * std::log(sc / W);
        } else {
          for (int64_t i = 0; i < n; ++i)
            if ((X(i, f) <= lo) == (side == 0)) cost += w[i] * std::pow(Y(i, 0) - s[0] / W, 2);
        }
      }
      if (Wl < min_leaf || Wr < min_leaf) continue;
      if (cost < best.cost - 1e-9) best = {f, lo, hi, cost};
    }
  return best;
}

double objective(const Expert& e, const Mat& X, const Mat& Y, const Vec& w) { return w.dot(e.log_likelihood(X, Y)) - e.penalty(); }

TEST(TreeExpert, RegressionStumpMatchesBruteForce) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    Rng rng(seed);
    const int64_t n = 30, d = 3;
    Mat X(n, d), Y(n, 1);
    Vec w(n);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < d; ++j) X(i, j) = std::round(rng.normal() * 4) / 4;  // ties on purpose
      Y(i, 0) = (X(i, int64_t(seed % 3)) > 0.1 ? 2.0 : -1.0) + 0.5 * rng.normal();
      w[i] = rng.uniform() * 2;
    }
    TreeExpert t(Task::regression, d, 1, {.max_depth = 1, .min_leaf_weight = 1.0});
    t.fit(X, Y, w);
    const Split s = brute_force_stump(X, Y, w, false, 1.0);
    const auto p = t.parameters();
    ASSERT_EQ(t.num_nodes(), 3) << "seed " << seed;
    EXPECT_EQ(int64_t(p.at("nodes")(0, 0)), s.feature) << "seed " << seed;
    const double thr = p.at("nodes")(0, 1);
    EXPECT_TRUE(thr >= s.lo && thr < s.hi) << thr << " not in [" << s.lo << ", " << s.hi << ")";
    // Leaves hold the weighted means; the variance is the weighted mean squared residual.
    double Wl = 0, Sl = 0, Wr = 0, Sr = 0;
    for (int64_t i = 0; i < n; ++i) (X(i, s.feature) <= s.lo ? Wl : Wr) += w[i], (X(i, s.feature) <= s.lo ? Sl : Sr) += w[i] * Y(i, 0);
    const Mat P = t.predict(X);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(P(i, 0), X(i, s.feature) <= s.lo ? Sl / Wl : Sr / Wr, 1e-12);
    EXPECT_NEAR(p.at("variance")(0, 0), s.cost / w.sum(), 1e-12);
  }
}

TEST(TreeExpert, ClassificationStumpMatchesBruteForceAndSmoothsLeaves) {
  Rng rng(9);
  const int64_t n = 40, d = 2, K = 3;
  Mat X(n, d), Y = Mat::Zero(n, K);
  Vec w(n);
  for (int64_t i = 0; i < n; ++i) {
    X(i, 0) = rng.normal(), X(i, 1) = rng.normal();
    Y(i, X(i, 1) > 0.3 ? 2 : (rng.uniform() < 0.7 ? 0 : 1)) = 1;
    w[i] = 0.2 + rng.uniform();
  }
  const double prior = 0.5;
  TreeExpert t(Task::classification, d, K, {.max_depth = 1, .min_leaf_weight = 0.5, .prior = prior});
  t.fit(X, Y, w);
  const Split s = brute_force_stump(X, Y, w, true, 0.5);
  const auto p = t.parameters();
  ASSERT_EQ(t.num_nodes(), 3);
  EXPECT_EQ(int64_t(p.at("nodes")(0, 0)), s.feature);
  const double thr = p.at("nodes")(0, 1);
  EXPECT_TRUE(thr >= s.lo && thr < s.hi);
  // p_c = (W_c + prior) / (W + K prior) on each side.
  const Mat P = t.predict(X);
  for (int side = 0; side < 2; ++side) {
    Vec Wc = Vec::Zero(K);
    int64_t any = -1;
    for (int64_t i = 0; i < n; ++i)
      if ((X(i, s.feature) <= s.lo) == (side == 0)) Wc += w[i] * Y.row(i).transpose(), any = i;
    ASSERT_GE(any, 0);
    for (int64_t c = 0; c < K; ++c) EXPECT_NEAR(P(any, c), (Wc[c] + prior) / (Wc.sum() + K * prior), 1e-12);
  }
}

TEST(TreeExpert, IntegerWeightsActAsRepeatedSamples) {
  const test::RepeatedRows r = test::repeated_rows(4, 25, [](double a, double b) { return a * b; });
  TreeExpert a(Task::regression, 2, 1, {.max_depth = 3, .min_leaf_weight = 2});
  TreeExpert b(Task::regression, 2, 1, {.max_depth = 3, .min_leaf_weight = 2});
  a.fit(r.X, r.Y, r.w);
  b.fit(r.Xr, r.Yr, Vec::Ones(r.Xr.rows()));
  EXPECT_GT(a.num_leaves(), 2);
  EXPECT_LT((a.predict(r.X) - b.predict(r.X)).cwiseAbs().maxCoeff(), 1e-12);
}

TEST(TreeExpert, RefitOnNewWeightsNeverLowersTheWeightedObjective) {
  for (int task = 0; task < 2; ++task) {
    Rng rng(20 + uint64_t(task));
    const int64_t n = 60, d = 3, m = task ? 3 : 1;
    Mat X(n, d), Y = Mat::Zero(n, m);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < d; ++j) X(i, j) = rng.normal();
      if (task) Y(i, int64_t(rng.next_u64() % 3)) = 1;
      else Y(i, 0) = std::sin(2 * X(i, 0)) + 0.3 * rng.normal();
    }
    TreeExpert t(task ? Task::classification : Task::regression, d, m, {.max_depth = 3, .min_leaf_weight = 1});
    for (int round = 0; round < 15; ++round) {
      Vec w(n);
      for (int64_t i = 0; i < n; ++i) w[i] = rng.uniform() < 0.3 ? 0.0 : rng.uniform();
      const double before = objective(t, X, Y, w);
      t.fit(X, Y, w);
      EXPECT_GE(objective(t, X, Y, w), before - 1e-9 * std::abs(before)) << "task " << task << " round " << round;
    }
  }
}

TEST(TreeExpert, SavedAsFloatDecidesTheSameAndRejectsCorruptTrees) {
  Rng rng(5);
  const int64_t n = 200, d = 2;
  Mat X(n, d), Y(n, 1);
  for (int64_t i = 0; i < n; ++i) {
    X(i, 0) = rng.normal() * 1e-3 + 1.0, X(i, 1) = rng.normal();  // close values: float rounding matters
    Y(i, 0) = (X(i, 0) > 1.0 ? 1 : 0) + X(i, 1) + 0.01 * rng.normal();
  }
  TreeExpert t(Task::regression, d, 1, {.max_depth = 6, .min_leaf_weight = 1});
  t.fit(X, Y, Vec::Ones(n));
  auto p = t.parameters();
  for (auto& [k, v] : p) v = v.cast<float>().cast<double>();
  TreeExpert u(Task::regression, d, 1);
  u.set_parameters(p);
  EXPECT_EQ(u.num_nodes(), t.num_nodes());
  // Same leaf for every training point: the leaf values may differ by float rounding only.
  EXPECT_LT((u.predict(X) - t.predict(X)).cwiseAbs().maxCoeff(), 1e-5);
  EXPECT_LE(t.depth(), 6);

  auto broken = [&](auto edit) {
    auto q = t.parameters();
    edit(q);
    TreeExpert v(Task::regression, d, 1);
    EXPECT_THROW(v.set_parameters(q), Error);
  };
  broken([](auto& q) { q.at("nodes")(0, 2) = 0; });        // a child pointing at its parent: a cycle
  broken([](auto& q) { q.at("nodes")(0, 0) = 7; });        // no such feature
  broken([](auto& q) { q.at("nodes")(0, 3) = 1e9; });      // no such node
  broken([](auto& q) { q.at("variance")(0, 0) = -1; });
  broken([](auto& q) { q.erase("leaf"); });
  broken([](auto& q) { q.at("nodes") = Mat(0, 4); });

  TreeExpert c(Task::classification, d, 2);
  auto qc = c.parameters();
  qc.at("leaf")(0, 0) = 0.9;  // rows must sum to 1
  EXPECT_THROW(c.set_parameters(qc), Error);
  EXPECT_THROW(TreeExpert(Task::regression, d, 1, {.max_depth = -1}), Error);
}

}  // namespace
}  // namespace moe::classic
