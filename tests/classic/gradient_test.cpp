// Every differentiable part of the classic mixture against central finite differences: each
// expert kind's flat_gradient (both tasks, soft targets, sample weights) and the whole mixture's,
// with one and two levels of linear or MLP gates over mixed experts.
#include <cmath>

#include <gtest/gtest.h>

#include "classic/mixture.h"
#include "core/rng.h"

namespace moe::classic {
namespace {

struct Problem {
  Mat X, Y;
  Vec w;
};

Problem problem(Task task, int64_t n, int64_t d, int64_t m, uint64_t seed) {
  Rng rng(seed);
  Problem p{Mat(n, d), Mat::Zero(n, m), Vec(n)};
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j) p.X(i, j) = rng.normal();
    if (task == Task::regression) {
      for (int64_t c = 0; c < m; ++c) p.Y(i, c) = std::sin(p.X(i, 0) + double(c)) + 0.3 * rng.normal();
    } else {
      double s = 0;  // soft targets, as a gate sees them
      for (int64_t c = 0; c < m; ++c) s += p.Y(i, c) = 0.05 + rng.uniform();
      p.Y.row(i) /= s;
    }
    p.w[i] = 0.1 + rng.uniform();
  }
  return p;
}

// max_k |analytic_k - numeric_k| / (1 + |numeric_k|) over every parameter.
template <class F, class Set>
double fd_error(const Vec& theta0, const Vec& analytic, F objective, Set set) {
  double worst = 0;
  const double h = 1e-5;
  for (int64_t k = 0; k < theta0.size(); ++k) {
    Vec t = theta0;
    t[k] += h;
    set(t);
    const double up = objective();
    t[k] -= 2 * h;
    set(t);
    const double down = objective();
    const double numeric = (up - down) / (2 * h);
    worst = std::max(worst, std::abs(analytic[k] - numeric) / (1 + std::abs(numeric)));
  }
  set(theta0);
  return worst;
}

TEST(ClassicGradients, EachExpertKindMatchesFiniteDifferences) {
  struct Case {
    std::string kind;
    Task task;
    int64_t m;
  };
  for (const Case& c : {Case{"linear", Task::regression, 2}, Case{"logistic", Task::classification, 3},
                        Case{"mlp", Task::regression, 2}, Case{"mlp", Task::classification, 3}}) {
    const Problem p = problem(c.task, 30, 3, c.m, 5);
    auto e = make_expert(c.kind, ExpertSpec{c.task, 3, c.m, {{"l2", 0.3}, {"hidden", 5}}, 9});
    // Away from the start: fit once so every parameter (variances too) is nontrivial.
    e->fit(p.X, p.Y, p.w);
    const Vec theta = e->flat_parameters();
    ASSERT_EQ(e->flat_size(), theta.size()) << c.kind;
    const double err = fd_error(
        theta, e->flat_gradient(p.X, p.Y, p.w), [&] { return p.w.dot(e->log_likelihood(p.X, p.Y)) - e->penalty(); },
        [&](const Vec& t) { e->set_flat_parameters(t); });
    EXPECT_LT(err, 1e-6) << c.kind;
  }
}

TEST(ClassicGradients, MixturesAndHierarchiesMatchFiniteDifferences) {
  struct Case {
    Task task;
    std::vector<std::string> kinds;
    int depth;
    std::string gate;
  };
  for (const Case& c : {Case{Task::regression, {"linear", "mlp", "linear"}, 1, "logistic"},
                        Case{Task::regression, {"linear", "mlp", "mlp", "linear"}, 2, "mlp"},
                        Case{Task::classification, {"logistic", "mlp", "logistic", "mlp"}, 2, "logistic"}}) {
    const int64_t m = c.task == Task::regression ? 1 : 3;
    Problem p = problem(c.task, 40, 2, m, 8);
    if (c.task == Task::classification)  // one-hot rows, as a CSV gives them
      for (int64_t i = 0; i < p.Y.rows(); ++i) {
        Eigen::Index k;
        p.Y.row(i).maxCoeff(&k);
        p.Y.row(i).setZero();
        p.Y(i, k) = 1;
      }
    Mixture mix(2, m, {.task = c.task, .kinds = c.kinds, .expert_options = {{"hidden", 4}, {"l2", 0.1}}, .gate_l2 = 0.1, .seed = 4,
                       .depth = c.depth, .gate_kind = c.gate, .gate_options = {{"hidden", 3}}});
    mix.initialize(p.X, p.Y, 6);
    mix.em_iteration(p.X, p.Y);
    ASSERT_TRUE(mix.differentiable());
    const Vec theta = mix.flat_parameters();
    const double err = fd_error(theta, mix.flat_gradient(p.X, p.Y), [&] { return mix.objective(p.X, p.Y); },
                                [&](const Vec& t) { mix.set_flat_parameters(t); });
    EXPECT_LT(err, 1e-6) << "depth " << c.depth << " gate " << c.gate;
  }
}

}  // namespace
}  // namespace moe::classic
