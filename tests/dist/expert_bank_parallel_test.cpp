// The expert-parallel MoE layer against the single-process layer: every rank builds both with the
// same weights, runs the single-process layer on the whole batch and the expert-parallel one on
// its slice (uneven slices; experts with no rows), and compares outputs, input gradients, the
// gate's gradient summed over the ranks, its own experts' gradients, the balancing losses and the
// loads, for each router.
#include "dist/expert_bank_parallel.h"

#include <gtest/gtest.h>

#include <functional>

#include "moe/expert_bank_swiglu.h"
#include "moe/moe_layer.h"
#include "moe/router_expert_choice.h"
#include "moe/router_sigmoid_bias.h"
#include "moe/router_topk.h"
#include "../test_util.h"

namespace moe::dist {
namespace {

constexpr int D = 8, F = 12, E = 8;

using RouterFactory = std::function<std::unique_ptr<Router>()>;

// Weights from the tensor's name, so that both layers hold the same values for the same expert.
void fill_by_name(const ParamList& ps) {
  for (Param* p : ps) {
    Rng rng(std::hash<std::string>{}(p->name));
    test::fill_normal(p->w, rng, 0.5f);
  }
}

Param* find(const ParamList& ps, const std::string& name) {
  for (Param* p : ps)
    if (p->name == name) return p;
  return nullptr;
}

std::unique_ptr<MoELayer> make_layer(const RouterFactory& rf, const ParallelLayout& L, bool parallel) {
  auto router = rf();
  router->set_training(true);
  if (parallel) router->set_data_group(L.world);
  auto bank = make_swiglu_experts("moe", {.d_model = D, .d_ff = F, .n_experts = E}, parallel ? L : ParallelLayout{});
  auto layer = std::make_unique<MoELayer>(std::move(router), std::move(bank), D);
  ParamList ps;
  layer->params(ps);
  fill_by_name(ps);
  return layer;
}

void check_router(const RouterFactory& rf, const std::string& what) {
  SCOPED_TRACE(what);
  const Communicator w = Communicator::world();
  const int W = w.size();
  for (int R = 1; R <= W; ++R) {
    if (W % R != 0 || E % R != 0) continue;
    SCOPED_TRACE("R = " + std::to_string(R));
    const ParallelLayout L = ParallelLayout::make(w, R);
    // Rank r holds 3 + 2r tokens of the batch.
    std::vector<int64_t> first(W + 1, 0);
    for (int r = 0; r < W; ++r) first[r + 1] = first[r] + 3 + 2 * r;
    const int64_t N = first[W], n = first[w.rank() + 1] - first[w.rank()], t0 = first[w.rank()];
    Rng rng(7);
    Tensor x({N, D}), dy({N, D});
    test::fill_normal(x, rng);
    test::fill_normal(dy, rng);
    // Feature 0 pushes every token away from expert 5 (a zero-row expert for the top-k routers).
    for (int64_t t = 0; t < N; ++t) x[t * D] = 3.0f;

    auto ref = make_layer(rf, L, false);
    auto par = make_layer(rf, L, true);
    ParamList rps, pps;
    ref->params(rps);
    par->params(pps);
    for (auto* layer : {ref.get(), par.get()}) {
      ParamList ps;
      layer->params(ps);
      for (Param* p : ps)
        if (p->name == "gate.weight")
          for (int e = 0; e < E; ++e) p->w[e * D] = e == 5 ? -4.0f : 0.3f;
    }
    Tensor y({N, D}), dx({N, D}), py({n, D}), pdx({n, D});
    ref->forward(y.data(), x.data(), N);
    par->forward(py.data(), x.data() + t0 * D, n);
    ref->backward(dx.data(), dy.data());
    par->backward(pdx.data(), dy.data() + t0 * D);
    for (int64_t i = 0; i < n * D; ++i) {
      ASSERT_TRUE(test::close(py[i], y[t0 * D + i], 1e-5, 1e-6)) << "y " << i;
      ASSERT_TRUE(test::close(pdx[i], dx[t0 * D + i], 1e-5, 1e-6)) << "dx " << i;
    }
    // Losses: the same sums over the same probabilities, which differ by float rounding only (the
    // gate's GEMM runs over n rows here, N there).
    EXPECT_TRUE(test::close(par->router().aux_objective(), ref->router().aux_objective(), 1e-6, 1e-9));
    EXPECT_EQ(par->plan().stats.tokens_per_expert, ref->plan().stats.tokens_per_expert);
    EXPECT_EQ(par->plan().stats.dropped, ref->plan().stats.dropped);
    EXPECT_TRUE(test::close(par->plan().stats.aux_loss, ref->plan().stats.aux_loss, 1e-6, 1e-9));
    EXPECT_TRUE(test::close(par->plan().stats.z_loss, ref->plan().stats.z_loss, 1e-6, 1e-9));
    // The gate's gradient: this rank's share, summed over the ranks.
    Param* pg = find(pps, "gate.weight");
    w.all_reduce_sum(pg->g.data(), pg->g.numel());
    Param* rg = find(rps, "gate.weight");
    for (int64_t i = 0; i < rg->g.numel(); ++i) ASSERT_TRUE(test::close(pg->g[i], rg->g[i], 1e-4, 1e-5)) << "gate grad " << i;
    // Each local expert's gradient, summed over the replicas holding it, equals the reference's.
    int checked = 0;
    for (Param* p : pps) {
      if (!p->sharded) continue;
      L.replica.all_reduce_sum(p->g.data(), p->g.numel());
      Param* q = find(rps, p->name);
      ASSERT_NE(q, nullptr) << p->name;
      for (int64_t i = 0; i < q->g.numel(); ++i) ASSERT_TRUE(test::close(p->g[i], q->g[i], 1e-4, 1e-5)) << p->name << " " << i;
      ++checked;
    }
    EXPECT_EQ(checked, R > 1 ? 3 * E / R : 0);
  }
}

TEST(ExpertParallelBank, TopKSoftmaxMatchesOneProcess) {
  check_router([] { return std::make_unique<TopKRouter>("gate.weight", TopKRouterConfig{.d_model = D, .n_expert = E, .k = 2, .aux_coef = 0.1f, .z_coef = 0.01f}); }, "topk");
}

TEST(ExpertParallelBank, SwitchCapacityMatchesOneProcess) {
  check_router([] { return std::make_unique<TopKRouter>("gate.weight", TopKRouterConfig{.d_model = D, .n_expert = E, .k = 1, .norm_topk_prob = false, .aux_coef = 0.1f, .capacity_factor = 1.0f}); }, "switch");
}

TEST(ExpertParallelBank, SigmoidBiasMatchesOneProcess) {
  check_router([] { return std::make_unique<SigmoidBiasRouter>("gate.weight", SigmoidBiasRouterConfig{.d_model = D, .n_expert = E, .k = 2, .aux_coef = 0.05f}); }, "sigmoid_bias");
}

TEST(ExpertParallelBank, ExpertChoiceMatchesOneProcess) {
  check_router([] { return std::make_unique<ExpertChoiceRouter>("gate.weight", ExpertChoiceRouterConfig{.d_model = D, .n_expert = E, .capacity = 2.0f, .z_coef = 0.01f}); }, "expert_choice");
}

TEST(ExpertParallelBank, RejectsAnExpertCountTheGroupDoesNotDivide) {
  const Communicator w = Communicator::world();
  if (w.size() == 1 || 7 % w.size() == 0) GTEST_SKIP() << "needs a group size that does not divide 7";
  const ParallelLayout L = ParallelLayout::make(w, w.size());
  EXPECT_THROW(make_swiglu_experts("model.layers.0.block_sparse_moe", {.d_model = D, .d_ff = F, .n_experts = 7}, L), Error);
}

}  // namespace
}  // namespace moe::dist
