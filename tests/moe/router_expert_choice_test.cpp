// ExpertChoiceRouter: each expert takes its C best tokens; gradients through the layer.
#include "moe/router_expert_choice.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "layer_fixture.h"

namespace moe {
namespace {

TEST(ExpertChoiceRouter, EachExpertTakesItsTopCTokens) {
  const int d = 8, E = 4;
  const int64_t n = 10;
  ExpertChoiceRouter r("g.weight", {.d_model = d, .n_expert = E, .capacity = 2.0f});
  Rng rng(5);
  for (int64_t i = 0; i < r.gate.w.numel(); ++i) r.gate.w[i] = float(rng.normal());
  std::vector<float> x(n * d);
  for (auto& v : x) v = float(rng.normal());
  RoutingPlan plan;
  r.forward(plan, x.data(), n);
  const int64_t C = 5;  // ceil(10 * 2 / 4)
  EXPECT_EQ(plan.k, E);
  EXPECT_FALSE(r.causal());
  // Reference: softmax per token, then per expert the C largest scores.
  for (int e = 0; e < E; ++e) {
    std::vector<std::pair<double, int64_t>> s;
    for (int64_t t = 0; t < n; ++t) {
      std::vector<double> logit(E);
      double mx = -1e30, z = 0;
      for (int f = 0; f < E; ++f) {
        for (int i = 0; i < d; ++i) logit[f] += double(r.gate.w[f * d + i]) * x[t * d + i];
        mx = std::max(mx, logit[f]);
      }
      for (int f = 0; f < E; ++f) z += std::exp(logit[f] - mx);
      s.emplace_back(std::exp(logit[e] - mx) / z, t);
    }
    std::sort(s.begin(), s.end(), [](auto a, auto b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
    int64_t taken = 0;
    for (int64_t t = 0; t < n; ++t) taken += plan.expert[t * E + e] == e;
    EXPECT_EQ(taken, C);
    for (int64_t i = 0; i < C; ++i) {
      const int64_t t = s[i].second;
      EXPECT_EQ(plan.expert[t * E + e], e);
      EXPECT_NEAR(plan.weight[t * E + e], s[i].first, 1e-6);
    }
  }
  EXPECT_EQ(plan.stats.tokens_per_expert, std::vector<int64_t>(E, C));
}

TEST(ExpertChoiceRouter, GradientsThroughTheLayer) {
  test::Fixture fx(std::make_unique<ExpertChoiceRouter>("gate.weight", ExpertChoiceRouterConfig{.d_model = 8, .n_expert = 4, .capacity = 2.0f, .z_coef = 0.5f}), 31);
  test::check_grads(fx, 32);
}

}  // namespace
}  // namespace moe
