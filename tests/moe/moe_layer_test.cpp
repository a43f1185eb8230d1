// The MoE layer (top-k router + dispatch + SwiGLU bank + combine) against a naive per-token
// reference, and every gradient (input, router, experts, balancing losses) against finite
// differences.
#include "moe/moe_layer.h"

#include <gtest/gtest.h>

#include <cmath>

#include "moe/expert_bank_swiglu.h"
#include "moe/router_topk.h"
#include "../test_util.h"
#include "layer_fixture.h"

namespace moe {
namespace {

using test::Fixture;
using test::check_grads;

float silu(float a) { return a / (1 + std::exp(-a)); }

TEST(MoELayer, ForwardMatchesNaivePerTokenReference) {
  for (int k : {1, 2, 3}) {
    Fixture fx(k, k > 1, 0, 0, 7 + k);
    fx.loss();
    // Naive: for each token, softmax over the gate, pick the top-k, run each expert densely.
    for (int64_t t = 0; t < fx.n; ++t) {
      std::vector<double> logit(fx.E), p(fx.E);
      double mx = -1e30, s = 0;
      for (int e = 0; e < fx.E; ++e) {
        for (int i = 0; i < fx.d; ++i) logit[e] += double(fx.router->gate.w[e * fx.d + i]) * fx.x[t * fx.d + i];
        mx = std::max(mx, logit[e]);
      }
      for (int e = 0; e < fx.E; ++e) s += p[e] = std::exp(logit[e] - mx);
      for (auto& v : p) v /= s;
      std::vector<int> order(fx.E);
      for (int e = 0; e < fx.E; ++e) order[e] = e;
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
      double wsum = 0;
      for (int j = 0; j < k; ++j) wsum += p[order[j]];
      for (int i = 0; i < fx.d; ++i) {
        double acc = 0;
        for (int j = 0; j < k; ++j) {
          const int e = order[j];
          const double w = fx.norm ? p[e] / wsum : p[e];
          double out = 0;
          for (int h = 0; h < fx.f; ++h) {
            double g = 0, u = 0;
            for (int q = 0; q < fx.d; ++q) {
              g += double(fx.bank->w1[e]->w[h * fx.d + q]) * fx.x[t * fx.d + q];
              u += double(fx.bank->w3[e]->w[h * fx.d + q]) * fx.x[t * fx.d + q];
            }
            out += double(fx.bank->w2[e]->w[i * fx.f + h]) * silu(float(g)) * u;
          }
          acc += w * out;
        }
        EXPECT_NEAR(fx.y[t * fx.d + i], acc, 1e-4 * (1 + std::abs(acc))) << "k=" << k << " t=" << t << " i=" << i;
      }
    }
  }
}

TEST(MoELayer, GradientsTop2Renormalised) {
  Fixture fx(2, true, 0.0f, 0.0f, 1);
  check_grads(fx, 11);
}
TEST(MoELayer, GradientsTop1NotRenormalised) {
  Fixture fx(1, false, 0.0f, 0.0f, 2);
  check_grads(fx, 12);
}
TEST(MoELayer, GradientsWithBalancingAndZLoss) {
  // Large coefficients so the auxiliary gradients dominate and are really checked.
  Fixture fx(2, true, 5.0f, 2.0f, 3);
  check_grads(fx, 13);
}
TEST(MoELayer, GradientsTop3Of4) {
  Fixture fx(3, true, 1.0f, 0.5f, 4);
  check_grads(fx, 14);
}

TEST(MoELayer, GradientsWithSequenceWiseLoss) {
  Fixture fx(std::make_unique<TopKRouter>("gate.weight", TopKRouterConfig{.d_model = 8, .n_expert = 4, .k = 2, .norm_topk_prob = true, .seq_aux_coef = 3.0f}), 7);
  fx.any_router->set_sequence_length(5);  // n = 10: two sequences
  check_grads(fx, 17);
}

TEST(MoELayer, GradientsWithCapacityDrops) {
  // Capacity 0.5: about half of the slots are dropped; dropped slots contribute nothing.
  Fixture fx(2, true, 1.0f, 0.1f, 6, 0.5f);
  fx.loss();
  EXPECT_GT(fx.layer->plan().stats.dropped, 0);
  check_grads(fx, 16);
}

TEST(MoELayer, DroplessCountsEveryChoice) {
  Fixture fx(2, true, 0, 0, 5);
  fx.loss();
  const auto& st = fx.layer->plan().stats;
  int64_t total = 0;
  for (auto c : st.tokens_per_expert) total += c;
  EXPECT_EQ(total, fx.n * fx.k);
  EXPECT_EQ(st.dropped, 0);
}

}  // namespace
}  // namespace moe
