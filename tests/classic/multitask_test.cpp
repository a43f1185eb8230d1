// The multi-task models (MMoE, one-gate MoE, shared bottom): forward against a per-sample reference
// written separately, every parameter's gradient against central differences, the parameter
// count, clear errors for bad configs and shapes, and Adam lowering the loss deterministically.
#include "classic/multitask.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include <gtest/gtest.h>

#include "../test_util.h"
#include "core/error.h"
#include "core/rng.h"

namespace moe::classic {
namespace {

const Architecture kAll[] = {Architecture::mmoe, Architecture::omoe, Architecture::shared_bottom};

MultiTaskConfig tiny(Architecture a, uint64_t seed = 7) {
  MultiTaskConfig c;
  c.architecture = a;
  c.inputs = 4, c.tasks = 3, c.experts = 3, c.expert_hidden = 4, c.bottom_hidden = 5, c.outputs = 3;
  c.tower_hidden = 3, c.seed = seed;
  return c;
}

using Params = std::map<std::string, Mat>;
using Row = Eigen::RowVectorXd;

// One sample through the model, straight from the formulas (one expert, gate and tower at a time);
// *margin gets the smallest |pre-activation| of every ReLU on the way.
struct Reference {
  const MultiTaskConfig& c;
  const Params& p;
  Row mlp(const std::string& pre, const Row& x, double* margin) const {
    const Row a = x * p.at(pre + ".w1") + p.at(pre + ".b1");
    *margin = std::min(*margin, a.cwiseAbs().minCoeff());
    return a.cwiseMax(0.0) * p.at(pre + ".w2") + p.at(pre + ".b2");
  }
  Row gate(int g, const Row& x) const {
    const Row z = x * p.at("gates." + std::to_string(g) + ".w") + p.at("gates." + std::to_string(g) + ".b");
    Row e(z.size());
    for (Eigen::Index k = 0; k < z.size(); ++k) e[k] = std::exp(z[k]);
    return e / e.sum();
  }
  Row predict(const Row& x, double* margin) const {
    std::vector<Row> f;
    if (c.architecture == Architecture::shared_bottom) f.push_back(mlp("bottom", x, margin));
    else
      for (int64_t k = 0; k < c.experts; ++k) f.push_back(mlp("experts." + std::to_string(k), x, margin));
    Row y(c.tasks);
    for (int64_t t = 0; t < c.tasks; ++t) {
      Row u = Row::Zero(c.outputs);
      if (c.architecture == Architecture::shared_bottom) u = f[0];
      else {
        const Row g = gate(c.architecture == Architecture::mmoe ? int(t) : 0, x);
        for (int64_t k = 0; k < c.experts; ++k) u += g[k] * f[size_t(k)];
      }
      y[t] = mlp("towers." + std::to_string(t), u, margin)(0);
    }
    return y;
  }
};

// n samples whose every ReLU pre-activation is at least `margin` from 0 (others are redrawn), so a
// finite difference step cannot cross a kink; Y random.
void smooth_problem(const MultiTaskModel& m, int64_t n, double margin, uint64_t seed, Mat& X, Mat& Y) {
  Rng rng(seed);
  const auto& c = m.config();
  const Params p = m.parameters();
  const Reference ref{c, p};
  X.resize(n, c.inputs), Y.resize(n, c.tasks);
  for (int64_t i = 0; i < n;) {
    Row x(c.inputs);
    for (auto& v : x) v = rng.normal();
    double closest = 1e300;
    ref.predict(x, &closest);
    if (closest < margin) continue;
    X.row(i) = x;
    for (int64_t t = 0; t < c.tasks; ++t) Y(i, t) = rng.normal();
    ++i;
  }
}

TEST(MultiTask, ForwardAndLossMatchAPerSampleReference) {
  for (Architecture a : kAll) {
    MultiTaskModel m(tiny(a));
    Mat X, Y;
    smooth_problem(m, 7, 0.0, 3, X, Y);
    const Params p = m.parameters();
    const Reference ref{m.config(), p};
    const Mat out = m.forward(X);
    ASSERT_EQ(out.rows(), 7);
    ASSERT_EQ(out.cols(), 3);
    double loss = 0, ignored = 1e300;
    for (int64_t i = 0; i < X.rows(); ++i) {
      const Row y = ref.predict(X.row(i), &ignored);
      EXPECT_LT((out.row(i) - y).cwiseAbs().maxCoeff(), 1e-12) << architecture_name(a) << " sample " << i;
      loss += (y - Y.row(i)).squaredNorm();
    }
    EXPECT_NEAR(m.loss(X, Y), loss / 7, 1e-12) << architecture_name(a);
  }
}

TEST(MultiTask, EveryParametersGradientMatchesCentralDifferences) {
  for (Architecture a : kAll) {
    MultiTaskModel m(tiny(a));
    Mat X, Y;
    // Every pre-activation >= 1e-3 from its kink; a step of 1e-6 moves one by far less.
    smooth_problem(m, 6, 1e-3, 11, X, Y);
    const Params grad = m.gradient(X, Y);
    Params p = m.parameters();
    std::set<std::string> names;
    for (const auto& [name, g] : grad) names.insert(name);
    std::set<std::string> expected;
    for (const auto& [name, v] : p) expected.insert(name);
    ASSERT_EQ(names, expected) << architecture_name(a);
    // Each kind of parameter is there (and so checked below).
    const std::vector<std::string> kinds =
        a == Architecture::shared_bottom
            ? std::vector<std::string>{"bottom.w1", "bottom.b1", "bottom.w2", "bottom.b2", "towers.2.w1", "towers.0.b2"}
            : std::vector<std::string>{"experts.2.w1", "experts.0.b1", "experts.1.w2", "experts.1.b2", "gates.0.w",
                                       "gates.0.b", "towers.2.w1", "towers.1.b2"};
    for (const auto& k : kinds) EXPECT_TRUE(names.count(k)) << architecture_name(a) << " lacks " << k;
    EXPECT_EQ(names.count("gates.2.w"), a == Architecture::mmoe ? 1u : 0u) << "one gate per task in mmoe only";

    const double h = 1e-6;
    double worst = 0;
    std::string worst_at;
    for (auto& [name, value] : p) {
      for (Eigen::Index j = 0; j < value.size(); ++j) {
        const double v0 = value.data()[j];
        value.data()[j] = v0 + h;
        m.set_parameters(p);
        const double lp = m.loss(X, Y);
        value.data()[j] = v0 - h;
        m.set_parameters(p);
        const double lm = m.loss(X, Y);
        value.data()[j] = v0;
        const double fd = (lp - lm) / (2 * h), g = grad.at(name).data()[j];
        // Relative, with a floor so that entries near 0 (a dead ReLU's weight) compare absolutely.
        const double rel = std::abs(g - fd) / std::max({std::abs(g), std::abs(fd), 1e-4});
        if (rel > worst) worst = rel, worst_at = name + "[" + std::to_string(j) + "]";
      }
    }
    m.set_parameters(p);
    char shown[32];
    std::snprintf(shown, sizeof shown, "%.2e", worst);
    RecordProperty(architecture_name(a) + "_worst_relative_error", shown);
    EXPECT_LT(worst, 1e-5) << architecture_name(a) << " at " << worst_at;
  }
}

TEST(MultiTask, ParameterCountsAndGates) {
  const int64_t d = 4, T = 3, E = 3, he = 4, hb = 5, o = 3, ht = 3;
  const int64_t towers = T * (o * ht + ht + ht + 1), expert = d * he + he + he * o + o;
  EXPECT_EQ(MultiTaskModel(tiny(Architecture::mmoe)).parameter_count(), E * expert + T * (d * E + E) + towers);
  EXPECT_EQ(MultiTaskModel(tiny(Architecture::omoe)).parameter_count(), E * expert + (d * E + E) + towers);
  EXPECT_EQ(MultiTaskModel(tiny(Architecture::shared_bottom)).parameter_count(), d * hb + hb + hb * o + o + towers);

  MultiTaskModel m(tiny(Architecture::mmoe));
  const Mat X = Mat::Random(5, d);
  const Mat g = m.gates(X);  // [5, T * E]
  ASSERT_EQ(g.cols(), T * E);
  for (int64_t t = 0; t < T; ++t)
    EXPECT_LT((g.middleCols(t * E, E).rowwise().sum().array() - 1).abs().maxCoeff(), 1e-12);
  EXPECT_EQ(MultiTaskModel(tiny(Architecture::omoe)).gates(X).cols(), E);
  EXPECT_EQ(MultiTaskModel(tiny(Architecture::shared_bottom)).gates(X).cols(), 0);
}

// One seed gives MMoE and OMoE the same experts, towers and first gate, so that their comparison
// is paired by initialisation; MMoE's other gates are drawn apart from the first.
TEST(MultiTask, MmoeAndOmoeShareTheirInitialisationBeyondTheExtraGates) {
  const auto mm = MultiTaskModel(tiny(Architecture::mmoe)).parameters();
  const auto om = MultiTaskModel(tiny(Architecture::omoe)).parameters();
  for (const auto& [name, w] : om) {
    ASSERT_TRUE(mm.count(name)) << name;
    EXPECT_EQ(mm.at(name), w) << name;
  }
  EXPECT_NE(mm.at("gates.1.w"), mm.at("gates.0.w"));
  EXPECT_NE(MultiTaskModel(tiny(Architecture::omoe, 8)).parameters().at("towers.0.w1"), om.at("towers.0.w1"));
}

TEST(MultiTask, BadConfigsAndShapesAreClearErrors) {
  EXPECT_EQ(parse_architecture("omoe"), Architecture::omoe);
  EXPECT_NE(test::error_of([] { parse_architecture("moe"); }).find("known: mmoe, omoe, shared_bottom"), std::string::npos);
  auto with = [](Architecture a, auto change) {
    MultiTaskConfig c = tiny(a);
    change(c);
    return test::error_of([&] { MultiTaskModel m(c); });
  };
  EXPECT_NE(with(Architecture::mmoe, [](auto& c) { c.inputs = 0; }).find("inputs must be positive"), std::string::npos);
  EXPECT_NE(with(Architecture::omoe, [](auto& c) { c.tasks = 0; }).find("tasks"), std::string::npos);
  EXPECT_NE(with(Architecture::mmoe, [](auto& c) { c.experts = 0; }).find("experts"), std::string::npos);
  EXPECT_NE(with(Architecture::omoe, [](auto& c) { c.expert_hidden = -1; }).find("expert_hidden"), std::string::npos);
  EXPECT_NE(with(Architecture::mmoe, [](auto& c) { c.tower_hidden = 0; }).find("tower_hidden"), std::string::npos);
  EXPECT_NE(with(Architecture::shared_bottom, [](auto& c) { c.bottom_hidden = 0; }).find("bottom_hidden"), std::string::npos);
  EXPECT_NE(with(Architecture::shared_bottom, [](auto& c) { c.outputs = 0; }).find("outputs"), std::string::npos);
  // The bottom's size does not matter to the mixtures, nor the experts' to the shared bottom.
  EXPECT_EQ(with(Architecture::mmoe, [](auto& c) { c.bottom_hidden = 0; }), "(no error)");
  EXPECT_EQ(with(Architecture::shared_bottom, [](auto& c) { c.experts = 0; }), "(no error)");

  MultiTaskModel m(tiny(Architecture::mmoe));
  const Mat X = Mat::Random(5, 4), Y = Mat::Random(5, 3);
  EXPECT_NE(test::error_of([&] { m.forward(Mat(5, 3)); }).find("X has 3 columns"), std::string::npos);
  EXPECT_NE(test::error_of([&] { m.loss(X, Mat(5, 2)); }).find("samples x tasks"), std::string::npos);
  EXPECT_THROW(m.gradient(X, Mat(4, 3)), Error);
  EXPECT_THROW(m.loss(Mat(0, 4), Mat(0, 3)), Error);
  EXPECT_THROW(m.train(X, Y, {.learning_rate = 0}), Error);
  EXPECT_THROW(m.train(X, Y, {.batch_size = 0}), Error);
  EXPECT_THROW(m.train(X, Y, {.beta2 = 1.0}), Error);
  Mat bad = Y;
  bad(0, 0) = std::nan("");
  EXPECT_NE(test::error_of([&] { m.train(X, bad, {}); }).find("NaN"), std::string::npos);

  // set_parameters: a missing name or a wrong shape is refused, and the model is left as it was.
  const Params before = m.parameters();
  Params p = before;
  p.erase("towers.1.b1");
  EXPECT_NE(test::error_of([&] { m.set_parameters(p); }).find("towers.1.b1"), std::string::npos);
  p = before;
  p["experts.0.w1"] = Mat::Zero(1, 1);
  p["gates.0.w"] = Mat::Zero(4, 3);  // the right shape, would change: must not be applied either
  EXPECT_NE(test::error_of([&] { m.set_parameters(p); }).find("expected 4 x 4"), std::string::npos);
  EXPECT_EQ(m.parameters().at("gates.0.w"), before.at("gates.0.w"));
}

// Two related regression tasks on 8 inputs; Adam lowers the training loss well below where it
// starts, every run with the same seeds is identical, and the held-out loss follows.
TEST(MultiTask, AdamLowersTheLossDeterministically) {
  Rng rng(5);
  auto problem = [&](int64_t n, Mat& X, Mat& Y) {
    X.resize(n, 8), Y.resize(n, 2);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < 8; ++j) X(i, j) = rng.normal();
      const double s = X.row(i).head(4).sum() / 2, r = X.row(i).tail(4).sum() / 2;
      Y(i, 0) = s + std::sin(s) + 0.1 * rng.normal();
      Y(i, 1) = 0.5 * s + r + std::sin(r) + 0.1 * rng.normal();
    }
  };
  Mat X, Y, Xt, Yt;
  problem(512, X, Y);
  problem(512, Xt, Yt);
  for (Architecture a : kAll) {
    MultiTaskConfig c{.architecture = a, .inputs = 8, .tasks = 2, .experts = 4, .expert_hidden = 8,
                      .bottom_hidden = 24, .outputs = 8, .tower_hidden = 8, .seed = 3};
    MultiTaskModel m(c), again(c);
    const double start = m.loss(Xt, Yt);
    TrainConfig tc{.learning_rate = 3e-3, .batch_size = 32, .epochs = 30, .seed = 9};
    std::vector<double> seen;
    tc.on_epoch = [&](int e, double loss) {
      EXPECT_EQ(e, int(seen.size()));
      seen.push_back(loss);
    };
    const auto history = m.train(X, Y, tc);
    ASSERT_EQ(history.size(), 30u);
    EXPECT_EQ(seen, history);
    tc.on_epoch = nullptr;
    EXPECT_LT(history.back(), 0.2 * history.front()) << architecture_name(a);
    EXPECT_LT(m.loss(Xt, Yt), 0.1 * start) << architecture_name(a);
    EXPECT_EQ(again.train(X, Y, tc), history) << architecture_name(a) << ": the same seeds, another result";
    EXPECT_EQ(again.parameters(), m.parameters());
  }
}

}  // namespace
}  // namespace moe::classic
