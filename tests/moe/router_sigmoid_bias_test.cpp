// SigmoidBiasRouter: selection by score + bias, weights from the unbiased scores, gradients through
// the layer, and the bias update moving a skewed load toward balance.
#include "moe/router_sigmoid_bias.h"

#include <gtest/gtest.h>

#include <cmath>

#include "layer_fixture.h"

namespace moe {
namespace {

TEST(SigmoidBiasRouter, SelectionUsesBiasWeightsDoNot) {
  SigmoidBiasRouter r("g.weight", {.d_model = 2, .n_expert = 3, .k = 1, .norm_topk_prob = false, .routed_scaling_factor = 2.0f});
  EXPECT_EQ(r.bias.name, "g.e_score_correction_bias");
  EXPECT_FALSE(r.bias.trainable);
  // logits = (x0, x1, 0) with gate rows e0 = (1,0), e1 = (0,1), e2 = 0.
  r.gate.w.zero();
  r.gate.w[0] = 1, r.gate.w[3] = 1;
  const float x[] = {1.0f, 0.5f};
  RoutingPlan plan;
  r.forward(plan, x, 1);
  EXPECT_EQ(plan.expert[0], 0);
  EXPECT_NEAR(plan.weight[0], 2.0 / (1 + std::exp(-1.0)), 1e-6);  // sigmoid(1) * scaling 2
  r.bias.w[1] = 0.2f;  // sigmoid(0.5) + 0.2 = 0.822 > sigmoid(1) = 0.731
  r.forward(plan, x, 1);
  EXPECT_EQ(plan.expert[0], 1);
  EXPECT_NEAR(plan.weight[0], 2.0 / (1 + std::exp(-0.5)), 1e-6);  // the bias does not enter the weight
}

TEST(SigmoidBiasRouter, GradientsThroughTheLayer) {
  for (bool norm : {true, false}) {
    test::Fixture fx(std::make_unique<SigmoidBiasRouter>("gate.weight", SigmoidBiasRouterConfig{.d_model = 8, .n_expert = 4, .k = 2, .norm_topk_prob = norm, .routed_scaling_factor = 1.5f, .aux_coef = 2.0f}), 21);
    test::check_grads(fx, 22);
  }
}

TEST(SigmoidBiasRouter, SequenceWiseLossByHand) {
  // Two sequences of two tokens, E = 2, k = 1, zero gate: logits = x . rows; rows e0 = (1, 0),
  // e1 = (0, 1). Sequence 0: x = (0, ln 3) twice -> s = (1/2, 3/4), q = (0.4, 0.6), both pick
  // expert 1: f = (0, 1), P = (0.4, 0.6) -> 2 * 0.6 = 1.2. Sequence 1: x = (ln 3, 0) then (0, ln 3):
  // f = (1/2, 1/2), P = (0.5, 0.5) -> 2 * 0.5 = 1. Mean 1.1.
  SigmoidBiasRouter r("g.weight", {.d_model = 2, .n_expert = 2, .k = 1, .norm_topk_prob = false, .seq_aux_coef = 1.0f});
  r.gate.w.zero();
  r.gate.w[0] = 1, r.gate.w[3] = 1;
  const float l3 = std::log(3.0f);
  const float x[] = {0, l3, 0, l3, l3, 0, 0, l3};
  RoutingPlan plan;
  r.set_sequence_length(2);
  r.forward(plan, x, 4);
  EXPECT_NEAR(plan.stats.seq_aux_loss, 1.1, 1e-6);
  EXPECT_NEAR(r.aux_objective(), 1.1, 1e-6);
  r.set_sequence_length(0);  // one sequence: the batch-wide loss (which sums in float)
  r.forward(plan, x, 4);
  EXPECT_NEAR(plan.stats.seq_aux_loss, plan.stats.aux_loss, 1e-6);
}

TEST(SigmoidBiasRouter, SequenceWiseGradientsThroughTheLayer) {
  auto rt = std::make_unique<SigmoidBiasRouter>("gate.weight", SigmoidBiasRouterConfig{.d_model = 8, .n_expert = 4, .k = 2, .aux_coef = 0.5f, .seq_aux_coef = 3.0f});
  rt->set_sequence_length(5);  // the fixture's 10 tokens are 2 sequences
  test::Fixture fx(std::move(rt), 23);
  test::check_grads(fx, 24);
}

TEST(SigmoidBiasRouter, BiasUpdateBalancesASkewedLoad) {
  const int d = 4, E = 4;
  const int64_t n = 256;
  SigmoidBiasRouter r("g.weight", {.d_model = d, .n_expert = E, .k = 1, .bias_update_speed = 0.01f});
  Rng rng(3);
  for (int64_t i = 0; i < r.gate.w.numel(); ++i) r.gate.w[i] = float(rng.normal() * 0.3);
  r.gate.w[0 * d + 0] += 2.0f;  // feature 0 is always 1: expert 0 is favoured by +2 in its logit
  std::vector<float> x(n * d);
  for (int64_t t = 0; t < n; ++t) {
    x[t * d] = 1.0f;
    for (int i = 1; i < d; ++i) x[t * d + i] = float(rng.normal());
  }
  auto max_vio = [&] {
    RoutingPlan plan;
    r.forward(plan, x.data(), n);
    int64_t mx = 0;
    for (auto c : plan.stats.tokens_per_expert) mx = std::max(mx, c);
    return (double(mx) - double(n) / E) / (double(n) / E);
  };
  r.set_training(true);
  const double before = max_vio();
  for (int step = 0; step < 300; ++step) {
    max_vio();
    r.after_step();
  }
  const double after = max_vio();
  EXPECT_GT(before, 1.0);
  EXPECT_LT(after, 0.3) << "MaxVio before " << before << " after " << after;
  EXPECT_LT(r.bias.w[0], 0.0f);  // the favoured expert's bias went down
}

}  // namespace
}  // namespace moe
