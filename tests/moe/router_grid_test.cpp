// GridRouter: the beam search against an exhaustive top-k over all experts (with and without dead
// cells), the prefixes it asks about, missing slots, the balancing loss by hand, and gradients
// through the layer against finite differences.
#include "moe/router_grid.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "layer_fixture.h"

namespace moe {
namespace {

// Live cells from a mask over the experts; counts the questions.
struct MaskLiveness final : GridLiveness {
  GridShape grid;
  std::vector<uint8_t> live;  // [E]
  int asked = 0;
  std::vector<int> live_children(const std::vector<int>& prefix) override {
    ++asked;
    const size_t d = prefix.size();
    std::set<int> out;
    for (int64_t e = 0; e < grid.size(); ++e) {
      if (!live[e]) continue;
      const std::vector<int> c = grid.coords(e);
      if (std::equal(prefix.begin(), prefix.end(), c.begin())) out.insert(c[d]);
    }
    return {out.begin(), out.end()};
  }
};

// The k best of the live experts by summed score, best first (ties: lower index).
std::vector<int32_t> exhaustive(const GridRouter& r, const GridShape& g, const float* x, int d,
                                const std::vector<uint8_t>* live, int k, std::vector<float>* score_out) {
  std::vector<int> off;
  int S = 0;
  for (int G : g.dims) off.push_back(S), S += G;
  std::vector<double> s(S, 0.0);
  for (int i = 0; i < S; ++i)
    for (int j = 0; j < d; ++j) s[i] += double(r.gate.w[int64_t(i) * d + j]) * x[j];
  std::vector<std::pair<double, int32_t>> all;
  for (int64_t e = 0; e < g.size(); ++e) {
    if (live && !(*live)[e]) continue;
    const std::vector<int> c = g.coords(e);
    double v = 0;
    for (size_t q = 0; q < c.size(); ++q) v += s[off[q] + c[q]];
    all.push_back({-v, int32_t(e)});
  }
  std::sort(all.begin(), all.end());
  std::vector<int32_t> out;
  for (int j = 0; j < k && j < int(all.size()); ++j) {
    out.push_back(all[j].second);
    if (score_out) score_out->push_back(float(-all[j].first));
  }
  return out;
}

GridRouter make(const GridShape& g, int k, int beam, int d, uint64_t seed) {
  GridRouter r("gate.weight", {.d_model = d, .grid = g, .k = k, .beam_size = beam});
  Rng rng(seed);
  test::fill_normal(r.gate.w, rng);
  return r;
}

TEST(GridRouter, BeamSearchIsExactTopKWithoutDeadExperts) {
  for (const GridShape& g : {GridShape{{4, 5}}, GridShape{{3, 2, 4}}, GridShape{{16}}}) {
    const int d = 6, k = 3, n = 40;
    GridRouter r = make(g, k, k, d, 7);
    Rng rng(8);
    Tensor x({n, d});
    test::fill_normal(x, rng);
    RoutingPlan plan;
    r.forward(plan, x.data(), n);
    EXPECT_EQ(plan.n_expert, g.size());
    for (int t = 0; t < n; ++t) {
      std::vector<float> sc;
      const auto want = exhaustive(r, g, x.data() + t * d, d, nullptr, k, &sc);
      const std::vector<int32_t> got(plan.expert.begin() + t * k, plan.expert.begin() + (t + 1) * k);
      EXPECT_EQ(got, want) << "grid of " << g.dims.size() << " dims, token " << t;
      // softmax over the chosen experts' scores
      double z = 0;
      for (float v : sc) z += std::exp(double(v) - sc[0]);
      for (int j = 0; j < k; ++j) EXPECT_NEAR(plan.weight[t * k + j], std::exp(double(sc[j]) - sc[0]) / z, 1e-5);
    }
  }
}

TEST(GridRouter, RoutesOnlyToLiveExpertsAndAsksFewPrefixes) {
  const GridShape g{{6, 5}};
  const int d = 5, k = 2, n = 30;
  Rng rng(3);
  MaskLiveness live;
  live.grid = g;
  live.live.assign(g.size(), 1);
  for (int64_t e = 0; e < g.size(); ++e)
    if (rng.below(3) == 0) live.live[e] = 0;
  for (int j = 0; j < 5; ++j) live.live[2 * 5 + j] = 0;  // a whole row dead: prefix 2 has no children
  Tensor x({n, d});
  test::fill_normal(x, rng);
  // A beam covering every row is exact over the live experts.
  {
    GridRouter r = make(g, k, 6, d, 11);
    r.set_liveness(&live);
    RoutingPlan plan;
    r.forward(plan, x.data(), n);
    for (int t = 0; t < n; ++t) {
      const auto want = exhaustive(r, g, x.data() + t * d, d, &live.live, k, nullptr);
      const std::vector<int32_t> got(plan.expert.begin() + t * k, plan.expert.begin() + (t + 1) * k);
      EXPECT_EQ(got, want) << t;
    }
    // Each prefix is asked about once per forward: the root and at most the 5 live rows.
    EXPECT_LE(live.asked, 1 + 5);
    EXPECT_EQ(r.prefixes_asked(), live.asked);
  }
  // A beam of k: every choice is live and no better live expert exists in the rows it kept.
  {
    live.asked = 0;
    GridRouter r = make(g, k, k, d, 11);
    r.set_liveness(&live);
    RoutingPlan plan;
    r.forward(plan, x.data(), n);
    for (int t = 0; t < n * k; ++t) {
      ASSERT_GE(plan.expert[t], 0);
      EXPECT_TRUE(live.live[plan.expert[t]]);
    }
    EXPECT_LE(live.asked, 1 + 5);
  }
}

TEST(GridRouter, FewerLiveExpertsThanKLeaveEmptySlots) {
  const GridShape g{{2, 2}};
  MaskLiveness live;
  live.grid = g;
  live.live = {0, 0, 1, 0};
  GridRouter r = make(g, 2, 2, 3, 5);
  r.set_liveness(&live);
  const float x[] = {0.3f, -1.0f, 2.0f};
  RoutingPlan plan;
  r.forward(plan, x, 1);
  EXPECT_EQ(plan.expert, (std::vector<int32_t>{2, -1}));
  EXPECT_EQ(plan.weight, (std::vector<float>{1.0f, 0.0f}));
  live.live = {0, 0, 0, 0};
  r.forward(plan, x, 1);
  EXPECT_EQ(plan.expert, (std::vector<int32_t>{-1, -1}));
}

TEST(GridRouter, AvailableMaskWithoutLiveness) {
  const GridShape g{{3, 3}};
  GridRouter r = make(g, 2, 3, 4, 9);
  std::vector<uint8_t> avail(9, 1);
  avail[0] = avail[4] = avail[8] = 0;
  r.set_available(&avail);
  Rng rng(1);
  Tensor x({20, 4});
  test::fill_normal(x, rng);
  RoutingPlan plan;
  r.forward(plan, x.data(), 20);
  for (int t = 0; t < 20; ++t)
    EXPECT_EQ(std::vector<int32_t>(plan.expert.begin() + 2 * t, plan.expert.begin() + 2 * t + 2),
              exhaustive(r, g, x.data() + 4 * t, 4, &avail, 2, nullptr));
}

TEST(GridRouter, BalancingLossByHand) {
  // Grid 2 x 2, d = 2, rows of the gate: dim 0 scores (x0, -x0), dim 1 scores (x1, -x1).
  GridRouter r("g", {.d_model = 2, .grid = GridShape{{2, 2}}, .k = 1, .aux_coef = 1});
  const float W[] = {1, 0, -1, 0, 0, 1, 0, -1};
  std::copy(W, W + 8, r.gate.w.data());
  // Token 0 picks (0, 0) = expert 0, token 1 picks (1, 1) = expert 3.
  const float x[] = {1, 1, -1, -1};
  RoutingPlan plan;
  r.forward(plan, x, 2);
  EXPECT_EQ(plan.expert, (std::vector<int32_t>{0, 3}));
  // f = (1/2, 1/2) in both dimensions, P = (1/2, 1/2) by symmetry: aux = mean_d 2 * (1/4 + 1/4) = 1.
  EXPECT_NEAR(plan.stats.aux_loss, 1.0, 1e-6);
  EXPECT_EQ(plan.stats.tokens_per_expert, (std::vector<int64_t>{1, 0, 0, 1}));
  // entropy: two dimensions of softmax(1, -1) each
  const double p = 1 / (1 + std::exp(-2.0));
  EXPECT_NEAR(plan.stats.entropy, -2 * (p * std::log(p) + (1 - p) * std::log(1 - p)), 1e-5);
}

TEST(GridRouter, GradientsThroughTheLayer) {
  test::Fixture fx(std::make_unique<GridRouter>("gate.weight", GridRouterConfig{.d_model = 8, .grid = GridShape{{2, 2}}, .k = 2, .aux_coef = 2.0f}), 51);
  test::check_grads(fx, 52);
}

TEST(GridRouter, GradientsWithADeadExpert) {
  auto r = std::make_unique<GridRouter>("gate.weight", GridRouterConfig{.d_model = 8, .grid = GridShape{{2, 2}}, .k = 3, .beam_size = 2, .aux_coef = 1.0f});
  MaskLiveness live;
  live.grid = GridShape{{2, 2}};
  live.live = {1, 0, 1, 1};
  r->set_liveness(&live);
  test::Fixture fx(std::move(r), 61);
  test::check_grads(fx, 62);
}

TEST(GridRouter, BadConfigIsAnError) {
  EXPECT_THROW(GridRouter("g", {.d_model = 2, .grid = GridShape{{2, 0}}, .k = 1}), Error);
  EXPECT_THROW(GridRouter("g", {.d_model = 2, .grid = GridShape{{2, 2}}, .k = 5}), Error);
  EXPECT_THROW(GridRouter("g", {.d_model = 2, .grid = GridShape{{2, 2}}, .k = 1, .beam_size = -1}), Error);
  EXPECT_THROW((GridShape{{2, 3}}.check(8, "x")), Error);
}

}  // namespace
}  // namespace moe
