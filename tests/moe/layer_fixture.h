#pragma once
// A MoE layer over d = 8, E = 4 experts with any router, and a finite-difference check of every
// gradient (input, router, experts) through it.
#include <gtest/gtest.h>

#include <functional>
#include <memory>

#include "moe/expert_bank_swiglu.h"
#include "moe/moe_layer.h"
#include "moe/router_topk.h"
#include "../test_util.h"

namespace moe::test {

struct Fixture {
  int d = 8, f = 12, E = 4, k = 2;
  int64_t n = 10;
  bool norm = true;
  TopKRouter* router = nullptr;
  SwiGLUExpertBank* bank = nullptr;
  std::unique_ptr<MoELayer> layer;
  Tensor x, r, y;

  Router* any_router = nullptr;
  Fixture(int k_, bool norm_, float aux, float z, uint64_t seed, float capacity = 0.0f)
      : Fixture(std::make_unique<TopKRouter>("gate.weight", TopKRouterConfig{.d_model = 8, .n_expert = 4, .k = k_, .norm_topk_prob = norm_, .aux_coef = aux, .z_coef = z, .capacity_factor = capacity}), seed) {
    k = k_;
    norm = norm_;
    router = static_cast<TopKRouter*>(any_router);
  }
  // Any router over d = 8, E = 4; wrap (optional) puts the SwiGLU bank behind another bank.
  using Wrap = std::function<std::unique_ptr<ExpertBank>(std::unique_ptr<SwiGLUExpertBank>)>;
  Fixture(std::unique_ptr<Router> rt, uint64_t seed, const Wrap& wrap = {}) {
    rt->set_training(true);
    any_router = rt.get();
    auto bk = std::make_unique<SwiGLUExpertBank>("moe", SwiGLUBankConfig{.d_model = d, .d_ff = f, .n_experts = E});
    bank = bk.get();
    std::unique_ptr<ExpertBank> outer = wrap ? wrap(std::move(bk)) : std::move(bk);
    layer = std::make_unique<MoELayer>(std::move(rt), std::move(outer), d);
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
    return s + any_router->aux_objective();
  }
};

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
    // Skip if either side of the difference changed the routing.
    const auto [num, smooth] = test::finite_diff_where_smooth(
        v, [&] { return fx.loss(); }, [&] { return fx.layer->plan().expert == sel; }, eps);
    if (!smooth) return;
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


}  // namespace moe::test
