// TopKRouter: selection, weights and the balancing losses against hand-computed values.
#include "moe/router_topk.h"

#include <gtest/gtest.h>

#include <cmath>

namespace moe {
namespace {

// Two experts, d = 2, gate = identity: logits are the inputs themselves.
TopKRouter make(int k, bool norm) {
  TopKRouter r("g", {.d_model = 2, .n_expert = 2, .k = k, .norm_topk_prob = norm, .aux_coef = 1, .z_coef = 1});
  r.gate.w[0] = 1, r.gate.w[1] = 0, r.gate.w[2] = 0, r.gate.w[3] = 1;
  return r;
}

TEST(TopKRouter, Top1RawProbabilityAndHandComputedLosses) {
  TopKRouter r = make(1, false);
  // token 0: logits (0, ln 3) -> p = (1/4, 3/4), picks expert 1 with weight 3/4
  // token 1: logits (ln 3, 0) -> p = (3/4, 1/4), picks expert 0 with weight 3/4
  const float x[] = {0.0f, std::log(3.0f), std::log(3.0f), 0.0f};
  RoutingPlan plan;
  r.forward(plan, x, 2);
  EXPECT_EQ(plan.expert[0], 1);
  EXPECT_EQ(plan.expert[1], 0);
  EXPECT_NEAR(plan.weight[0], 0.75f, 1e-6);
  EXPECT_NEAR(plan.weight[1], 0.75f, 1e-6);
  // f = (1/2, 1/2), P = (1/2, 1/2): aux = E * sum f P = 2 * (1/4 + 1/4) = 1
  EXPECT_NEAR(plan.stats.aux_loss, 1.0, 1e-6);
  // lse = ln(1 + 3) = ln 4 for both tokens: z = (ln 4)^2
  EXPECT_NEAR(plan.stats.z_loss, std::pow(std::log(4.0), 2), 1e-5);
  EXPECT_EQ(plan.stats.tokens_per_expert, (std::vector<int64_t>{1, 1}));
  // entropy of (1/4, 3/4)
  EXPECT_NEAR(plan.stats.entropy, -(0.25 * std::log(0.25) + 0.75 * std::log(0.75)), 1e-6);
}

TEST(TopKRouter, ImbalancedAuxLoss) {
  TopKRouter r = make(1, false);
  // both tokens prefer expert 1 with p = 3/4: f = (0, 1), P = (1/4, 3/4): aux = 2 * 3/4 = 1.5
  const float x[] = {0.0f, std::log(3.0f), 0.0f, std::log(3.0f)};
  RoutingPlan plan;
  r.forward(plan, x, 2);
  EXPECT_NEAR(plan.stats.aux_loss, 1.5, 1e-6);
  EXPECT_EQ(plan.stats.tokens_per_expert, (std::vector<int64_t>{0, 2}));
}

TEST(TopKRouter, Top2RenormalisedWeightsSumToOne) {
  TopKRouter r("g", {.d_model = 3, .n_expert = 4, .k = 2, .norm_topk_prob = true});
  for (int i = 0; i < 12; ++i) r.gate.w[i] = 0.1f * float(i % 5) - 0.2f;
  const float x[] = {1, 2, 3, -1, 0.5f, 2};
  RoutingPlan plan;
  r.forward(plan, x, 2);
  for (int t = 0; t < 2; ++t) {
    EXPECT_NEAR(plan.weight[t * 2] + plan.weight[t * 2 + 1], 1.0f, 1e-6);
    EXPECT_GE(plan.weight[t * 2], plan.weight[t * 2 + 1]);
    EXPECT_NE(plan.expert[t * 2], plan.expert[t * 2 + 1]);
  }
  // f counts both choices divided by k: sum f = 1, so at perfect balance aux = 1.
  int64_t total = 0;
  for (auto c : plan.stats.tokens_per_expert) total += c;
  EXPECT_EQ(total, 4);
}

TEST(TopKRouter, RoutesAroundUnavailableExperts) {
  TopKRouter r("g", {.d_model = 3, .n_expert = 4, .k = 2, .norm_topk_prob = true});
  for (int i = 0; i < 12; ++i) r.gate.w[i] = 0.1f * float(i % 5) - 0.2f;
  const float x[] = {1, 2, 3, -1, 0.5f, 2, 0, 0, 1};
  RoutingPlan all;
  r.forward(all, x, 3);
  // Take away the first choice of token 0: it moves to the others, weights still sum to 1, and the
  // unavailable expert gets no probability mass (its balancing statistics are zero).
  std::vector<uint8_t> avail(4, 1);
  avail[all.expert[0]] = 0;
  r.set_available(&avail);
  RoutingPlan plan;
  r.forward(plan, x, 3);
  for (int t = 0; t < 3; ++t) {
    for (int j = 0; j < 2; ++j) EXPECT_TRUE(avail[plan.expert[t * 2 + j]]) << t;
    EXPECT_NEAR(plan.weight[t * 2] + plan.weight[t * 2 + 1], 1.0f, 1e-6);
    for (float w : {plan.weight[t * 2], plan.weight[t * 2 + 1]}) EXPECT_TRUE(std::isfinite(w));
  }
  EXPECT_EQ(plan.stats.tokens_per_expert[all.expert[0]], 0);
  // Fewer than k available: no masking (the calls fail and the layer masks them instead).
  std::vector<uint8_t> one(4, 0);
  one[2] = 1;
  r.set_available(&one);
  r.forward(plan, x, 3);
  for (float w : plan.weight) EXPECT_TRUE(std::isfinite(w));
}

TEST(TopKRouter, CapacityDropsLaterTokensAndSecondChoicesFirst) {
  // Two experts, identity gate. Capacity factor 1 with n = 4, k = 1: C = ceil(4 / 2) = 2.
  TopKRouter r("g", {.d_model = 2, .n_expert = 2, .k = 1, .norm_topk_prob = false, .capacity_factor = 1.0f});
  r.gate.w[0] = 1, r.gate.w[1] = 0, r.gate.w[2] = 0, r.gate.w[3] = 1;
  const float x[] = {2, 0, 3, 0, 0, 1, 4, 0};  // tokens 0, 1, 3 prefer expert 0; token 2 expert 1
  RoutingPlan plan;
  r.set_training(true);
  r.forward(plan, x, 4);
  EXPECT_EQ(plan.expert, (std::vector<int32_t>{0, 0, 1, -1}));  // token 3 is past capacity
  EXPECT_EQ(plan.stats.dropped, 1);
  EXPECT_EQ(plan.stats.tokens_per_expert, (std::vector<int64_t>{2, 1}));
  // Evaluation uses eval_capacity_factor (0: dropless).
  r.set_training(false);
  r.forward(plan, x, 4);
  EXPECT_EQ(plan.stats.dropped, 0);

  // k = 2, C = ceil(1 * 3 * 2 / 2) = 3: all three first choices (expert 0) fit, then the second
  // choices fill expert 1; had second choices been assigned first they would have displaced them.
  TopKRouter r2("g", {.d_model = 2, .n_expert = 2, .k = 2, .norm_topk_prob = true, .capacity_factor = 1.0f});
  r2.gate.w[0] = 1, r2.gate.w[1] = 0, r2.gate.w[2] = 0, r2.gate.w[3] = 1;
  r2.set_training(true);
  const float y[] = {2, 0, 3, 0, 5, 0};
  r2.forward(plan, y, 3);
  EXPECT_EQ(plan.expert, (std::vector<int32_t>{0, 1, 0, 1, 0, 1}));
  EXPECT_EQ(plan.stats.dropped, 0);
  TopKRouter r3("g", {.d_model = 2, .n_expert = 2, .k = 2, .norm_topk_prob = true, .capacity_factor = 0.5f});
  r3.gate.w[0] = 1, r3.gate.w[1] = 0, r3.gate.w[2] = 0, r3.gate.w[3] = 1;
  r3.set_training(true);
  r3.forward(plan, y, 3);  // C = ceil(0.5 * 3 * 2 / 2) = 2: token 2's choices are both dropped
  EXPECT_EQ(plan.expert, (std::vector<int32_t>{0, 1, 0, 1, -1, -1}));
  EXPECT_EQ(plan.stats.dropped, 2);
}

TEST(TopKRouter, SequenceWiseLossHandComputed) {
  // Two sequences of two tokens. Sequence 0: both tokens pick expert 1 with p = (1/4, 3/4):
  // f = (0, 1), P = (1/4, 3/4), loss = 2 * 3/4 = 1.5. Sequence 1: one token each way: f = (1/2, 1/2),
  // P = (1/2, 1/2), loss = 1. Mean 1.25, while the batch-wide loss sees 3 of 4 to expert 1.
  TopKRouter r("g", {.d_model = 2, .n_expert = 2, .k = 1, .norm_topk_prob = false, .seq_aux_coef = 1});
  r.gate.w[0] = 1, r.gate.w[1] = 0, r.gate.w[2] = 0, r.gate.w[3] = 1;
  const float l3 = std::log(3.0f);
  const float x[] = {0, l3, 0, l3, 0, l3, l3, 0};
  RoutingPlan plan;
  r.set_sequence_length(2);
  r.forward(plan, x, 4);
  EXPECT_NEAR(plan.stats.seq_aux_loss, 1.25, 1e-6);
  EXPECT_NEAR(r.aux_objective(), 1.25, 1e-6);
  r.set_sequence_length(0);  // one sequence: equals the batch-wide loss
  r.forward(plan, x, 4);
  EXPECT_NEAR(plan.stats.seq_aux_loss, plan.stats.aux_loss, 1e-9);
}

TEST(TopKRouter, RejectsKLargerThanExperts) {
  EXPECT_THROW(TopKRouter("g", {.d_model = 2, .n_expert = 2, .k = 3}), Error);
}

}  // namespace
}  // namespace moe
