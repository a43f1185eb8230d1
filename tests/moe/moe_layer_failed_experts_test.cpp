// Experts that do not answer (remote experts): the MoE layer renormalises each token's weights over
// the experts that answered, a token with none keeps only the residual (zero MoE output), and every
// gradient through the renormalisation matches finite differences.
#include <gtest/gtest.h>

#include <set>

#include "layer_fixture.h"

namespace moe {
namespace {

// A local bank that pretends some experts failed: their rows are zero and reported as failed.
class FailingBank final : public ExpertBank {
 public:
  FailingBank(std::unique_ptr<SwiGLUExpertBank> inner, std::set<int> failed)
      : inner_(std::move(inner)), failed_(inner_->n_experts(), 0) {
    for (int e : failed) failed_[e] = 1;
  }
  int n_experts() const override { return inner_->n_experts(); }
  void forward(float* ys, const float* xs, const std::vector<int64_t>& off) override {
    inner_->forward(ys, xs, off);
    off_ = off;
    zero(ys);
  }
  void backward(float* dxs, const float* dys) override {
    inner_->backward(dxs, dys);
    zero(dxs);
  }
  void params(ParamList& out) override { inner_->params(out); }
  const std::vector<uint8_t>* failed_experts() const override { return &failed_; }

 private:
  void zero(float* rows) const {
    const int d = 8;
    for (int e = 0; e < n_experts(); ++e)
      if (failed_[e])
        for (int64_t i = off_[e] * d; i < off_[e + 1] * d; ++i) rows[i] = 0;
  }
  std::unique_ptr<SwiGLUExpertBank> inner_;
  std::vector<uint8_t> failed_;
  std::vector<int64_t> off_;
};

test::Fixture failing(int k, bool norm, std::set<int> failed, uint64_t seed) {
  return test::Fixture(
      std::make_unique<TopKRouter>("gate.weight", TopKRouterConfig{.d_model = 8, .n_expert = 4, .k = k, .norm_topk_prob = norm}),
      seed, [failed](std::unique_ptr<SwiGLUExpertBank> b) { return std::make_unique<FailingBank>(std::move(b), failed); });
}

TEST(MoELayerFailedExperts, WeightsRenormalisedOverAnsweredExperts) {
  auto fx = failing(2, true, {1}, 21);
  test::Fixture ref(std::make_unique<TopKRouter>("gate.weight", TopKRouterConfig{.d_model = 8, .n_expert = 4, .k = 2}), 21);
  fx.loss();
  ref.loss();
  const RoutingPlan& p = fx.layer->plan();
  const RoutingPlan& q = ref.layer->plan();
  ASSERT_EQ(p.expert, q.expert);
  int with_failed = 0;
  for (int64_t t = 0; t < fx.n; ++t) {
    const bool hit = p.expert[t * 2] == 1 || p.expert[t * 2 + 1] == 1;
    with_failed += hit;
    for (int j = 0; j < 2; ++j) {
      const int e = p.expert[t * 2 + j];
      const float expect = !hit ? q.weight[t * 2 + j] : (e == 1 ? 0.0f : 1.0f);  // the survivor takes it all
      EXPECT_NEAR(p.weight[t * 2 + j], expect, 1e-6) << t;
    }
  }
  EXPECT_GT(with_failed, 0);
}

TEST(MoELayerFailedExperts, NoExpertAnsweredGivesZeroOutput) {
  auto fx = failing(2, true, {0, 1, 2, 3}, 22);
  fx.loss();
  for (int64_t i = 0; i < fx.y.numel(); ++i) ASSERT_EQ(fx.y[i], 0.0f);
  Tensor dx({fx.n, fx.d});
  fx.layer->backward(dx.data(), fx.r.data());
  for (int64_t i = 0; i < dx.numel(); ++i) ASSERT_EQ(dx[i], 0.0f);
}

TEST(MoELayerFailedExperts, GradientsThroughRenormalisation) {
  auto a = failing(2, true, {1}, 23);
  test::check_grads(a, 31);
  auto b = failing(3, false, {0, 2}, 24);  // raw probabilities: the answered ones scaled up
  test::check_grads(b, 32);
}

}  // namespace
}  // namespace moe
