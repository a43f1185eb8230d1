// The MoE layer (top-k router + dispatch + SwiGLU bank + combine) against a naive per-token
// reference, and every gradient (input, router, experts, balancing losses) against finite
// differences.
#include "moe/moe_layer.h"

#include <gtest/gtest.h>

#include <cmath>

#include "moe/expert_bank_swiglu.h"
#include "moe/router_topk.h"
#include "../test_util.h"

namespace moe {
namespace {

struct Fixture {
  int d = 8, f = 12, E = 4, k = 2;
  int64_t n = 10;
  bool norm = true;
  TopKRouter* router = nullptr;
  SwiGLUExpertBank* bank = nullptr;
  std::unique_ptr<MoELayer> layer;
  Tensor x, r, y;

  Fixture(int k_, bool norm_, float aux, float z, uint64_t seed, float capacity = 0.0f) : k(k_), norm(norm_) {
    auto rt = std::make_unique<TopKRouter>("gate.weight", TopKRouterConfig{.d_model = d, .n_expert = E, .k = k, .norm_topk_prob = norm, .aux_coef = aux, .z_coef = z, .capacity_factor = capacity});
    rt->set_training(true);
    auto bk = std::make_unique<SwiGLUExpertBank>("moe", SwiGLUBankConfig{.d_model = d, .d_ff = f, .n_experts = E});
    router = rt.get();
    bank = bk.get();
    layer = std::make_unique<MoELayer>(std::move(rt), std::move(bk), d);
    Rng rng(seed);
    ParamList ps;
    layer->params(ps);
    for (Param* p : ps) test::fill_normal(p->w, rng, 0.5f);
    x = Tensor({n, d});
    r = Tensor({n, d});
    y = Tensor({n, d});
    test::fill_normal(x, rng);
    test::fill_normal(r, rng);
  }
  double loss() {
    layer->forward(y.data(), x.data(), n);
    double s = 0;
    for (int64_t i = 0; i < y.numel(); ++i) s += double(y[i]) * r[i];
    return s + router->aux_objective();
  }
};

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

// Float32 central differences: eps 1e-2 on O(1) values; tolerance rtol 2e-2 + atol 2e-3 (float
// rounding of the loss ~1e-6 / 2e-2 ~ 1e-4 of noise, plus curvature). Entries whose perturbation
// changes the top-k selection are skipped (the loss is not differentiable there).
void check_grads(Fixture& fx, uint64_t seed) {
  ParamList ps;
  fx.layer->params(ps);
  for (Param* p : ps) p->g.zero();
  fx.loss();
  const std::vector<int32_t> sel = fx.layer->plan().expert;
  Tensor dx({fx.n, fx.d});
  fx.layer->backward(dx.data(), fx.r.data());
  Rng rng(seed);
  const float eps = 1e-2f;
  int checked = 0;
  auto check = [&](float* v, float analytic, const std::string& what) {
    double num = test::finite_diff(v, [&] { return fx.loss(); }, eps);
    // Skip if either side of the difference changed the routing.
    float v0 = *v;
    *v = v0 + eps;
    fx.loss();
    bool same = fx.layer->plan().expert == sel;
    *v = v0 - eps;
    fx.loss();
    same = same && fx.layer->plan().expert == sel;
    *v = v0;
    if (!same) return;
    ++checked;
    EXPECT_TRUE(test::close(analytic, num, 2e-2, 2e-3)) << what << ": analytic " << analytic << " numeric " << num;
  };
  for (int i = 0; i < 20; ++i) {
    const int64_t j = int64_t(rng.below(fx.x.numel()));
    check(&fx.x[j], dx[j], "dx[" + std::to_string(j) + "]");
  }
  for (Param* p : ps)
    for (int i = 0; i < 6; ++i) {
      const int64_t j = int64_t(rng.below(p->w.numel()));
      check(&p->w[j], p->g[j], p->name + "[" + std::to_string(j) + "]");
    }
  EXPECT_GT(checked, 60);
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
