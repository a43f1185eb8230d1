// DeepSeekRouter against a brute-force reference of DeepSeek's MoEGate (every scoring function and
// selection method, V2's and V3's scaling), its gradients through the layer, and the bias update.
#include "moe/router_deepseek.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "layer_fixture.h"

namespace moe {
namespace {

using Method = DeepSeekRouterConfig::Method;

// The reference, straight from the definition in double: the chosen experts (as a set) and
// their weights by expert.
struct Choice {
  std::set<int> experts;
  std::map<int, double> weight;
};
Choice reference(const DeepSeekRouterConfig& c, const std::vector<double>& logits, const std::vector<double>& bias) {
  const int E = c.n_expert, per = E / c.n_group;
  std::vector<double> s(E), ch(E);
  double mx = *std::max_element(logits.begin(), logits.end()), z = 0;
  for (int e = 0; e < E; ++e) z += std::exp(logits[e] - mx);
  for (int e = 0; e < E; ++e) s[e] = c.sigmoid ? 1 / (1 + std::exp(-logits[e])) : std::exp(logits[e] - mx) / z;
  for (int e = 0; e < E; ++e) ch[e] = s[e] + (c.method == Method::noaux_tc ? bias[e] : 0.0);
  if (c.method != Method::greedy) {
    std::vector<std::pair<double, int>> gs;
    for (int g = 0; g < c.n_group; ++g) {
      std::vector<double> v(ch.begin() + g * per, ch.begin() + (g + 1) * per);
      std::sort(v.rbegin(), v.rend());
      gs.push_back({c.method == Method::noaux_tc ? v[0] + v[1] : v[0], g});
    }
    std::sort(gs.rbegin(), gs.rend());
    for (int r = c.topk_group; r < c.n_group; ++r)
      for (int j = 0; j < per; ++j) ch[gs[r].second * per + j] = 0;
  }
  std::vector<int> order(E);
  for (int e = 0; e < E; ++e) order[e] = e;
  std::sort(order.begin(), order.end(), [&](int a, int b) { return ch[a] > ch[b]; });
  Choice out;
  double sum = 0;
  for (int j = 0; j < c.k; ++j) out.experts.insert(order[j]), sum += s[order[j]];
  const bool renorm = c.k > 1 && c.norm_topk_prob;
  for (int e : out.experts)
    out.weight[e] = renorm ? s[e] / sum * (c.scale_normalized ? c.routed_scaling_factor : 1.0)
                           : s[e] * c.routed_scaling_factor;
  return out;
}

TEST(DeepSeekRouter, MatchesTheDefinitionForEveryMethod) {
  struct Case {
    Method method;
    bool sigmoid, norm, scale_normalized;
  };
  const std::vector<Case> cases = {{Method::greedy, false, false, false},
                                   {Method::greedy, true, true, true},
                                   {Method::group_limited_greedy, false, false, false},  // DeepSeek-V2
                                   {Method::group_limited_greedy, false, true, false},
                                   {Method::noaux_tc, true, true, true},                 // DeepSeek-V3
                                   {Method::noaux_tc, false, false, true}};
  const int E = 12, d = 6, n = 40;
  Rng rng(3);
  int group_effects = 0;
  for (const Case& cs : cases) {
    SCOPED_TRACE(int(cs.method) * 10 + cs.sigmoid);
    const DeepSeekRouterConfig c{.d_model = d, .n_expert = E, .k = 3, .sigmoid = cs.sigmoid, .method = cs.method,
                                 .n_group = 4, .topk_group = 2, .norm_topk_prob = cs.norm,
                                 .routed_scaling_factor = 1.7f, .scale_normalized = cs.scale_normalized};
    DeepSeekRouter r("gate.weight", c);
    EXPECT_EQ(r.bias != nullptr, cs.method == Method::noaux_tc);
    test::fill_normal(r.gate.w, rng, 1.0f);
    if (r.bias) test::fill_normal(r.bias->w, rng, 0.3f);
    Tensor x({n, d});
    test::fill_normal(x, rng);
    RoutingPlan plan;
    r.forward(plan, x.data(), n);
    for (int64_t t = 0; t < n; ++t) {
      std::vector<double> logits(E), bias(E, 0.0);
      for (int e = 0; e < E; ++e) {
        for (int i = 0; i < d; ++i) logits[e] += double(x[t * d + i]) * r.gate.w[e * d + i];
        if (r.bias) bias[e] = r.bias->w[e];
      }
      const Choice want = reference(c, logits, bias);
      std::set<int> got;
      for (int j = 0; j < 3; ++j) {
        const int e = plan.expert[t * 3 + j];
        got.insert(e);
        ASSERT_TRUE(want.weight.count(e)) << "token " << t << " expert " << e;
        EXPECT_NEAR(plan.weight[t * 3 + j], want.weight.at(e), 1e-5) << "token " << t;
      }
      EXPECT_EQ(got, want.experts) << "token " << t;
      if (cs.method == Method::group_limited_greedy) {  // tokens where the group limit changed the choice
        DeepSeekRouterConfig g = c;
        g.method = Method::greedy;
        if (reference(g, logits, bias).experts != want.experts) ++group_effects;
      }
    }
  }
  EXPECT_GT(group_effects, 10);  // the group limit mattered on many tokens
}

TEST(DeepSeekRouter, GradientsThroughTheLayer) {
  for (bool sigmoid : {false, true})
    for (bool norm : {false, true}) {
      SCOPED_TRACE(std::to_string(sigmoid) + std::to_string(norm));
      test::Fixture fx(std::make_unique<DeepSeekRouter>(
                           "gate.weight", DeepSeekRouterConfig{.d_model = 8, .n_expert = 4, .k = 2, .sigmoid = sigmoid,
                                                               .method = Method::group_limited_greedy, .n_group = 2,
                                                               .topk_group = 1, .norm_topk_prob = norm,
                                                               .routed_scaling_factor = 1.5f,
                                                               .scale_normalized = sigmoid, .aux_coef = 2.0f}),
                       31);
      test::check_grads(fx, 32);
    }
}

TEST(DeepSeekRouter, BiasMovesLoadTowardBalance) {
  DeepSeekRouter r("g.weight", {.d_model = 2, .n_expert = 4, .k = 1, .sigmoid = true, .method = Method::noaux_tc,
                                .n_group = 2, .topk_group = 2, .bias_update_speed = 0.1f});
  EXPECT_EQ(r.bias->name, "g.e_score_correction_bias");
  EXPECT_FALSE(r.bias->trainable);
  r.gate.w.zero();
  r.gate.w[0] = 1;  // expert 0 wins every token with x0 > 0
  r.set_training(true);
  const float x[] = {1, 0, 2, 0, 1, 1};
  RoutingPlan plan;
  r.forward(plan, x, 3);
  EXPECT_EQ(plan.stats.tokens_per_expert[0], 3);
  r.after_step();
  EXPECT_FLOAT_EQ(r.bias->w[0], -0.1f);  // over-loaded: down
  EXPECT_FLOAT_EQ(r.bias->w[1], 0.1f);   // idle: up
}

TEST(DeepSeekRouter, BadGroupsAreErrors) {
  auto make = [](int groups, int topk_group, int k) {
    DeepSeekRouter r("g.weight", {.d_model = 2, .n_expert = 8, .k = k, .method = Method::group_limited_greedy,
                                  .n_group = groups, .topk_group = topk_group});
  };
  EXPECT_NE(test::error_of([&] { make(3, 1, 2); }).find("n_group 3 must divide the 8 experts"), std::string::npos);
  EXPECT_NE(test::error_of([&] { make(4, 5, 2); }).find("topk_group 5 must be in [1, n_group]"), std::string::npos);
  EXPECT_NE(test::error_of([&] { make(4, 1, 3); }).find("fewer than k = 3"), std::string::npos);
}

}  // namespace
}  // namespace moe
