// PEER: exact retrieval against brute-force scoring of all N full keys, finite-difference gradients
// of every parameter and of the input, row-sparse table gradients (only retrieved rows,
// deterministic across thread counts, accumulating), and the usage statistics.
#include "moe/peer_layer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "core/threading.h"
#include "../test_util.h"

namespace moe {
namespace {

PEERConfig small(bool bn = false, bool sigmoid = false, bool relu = false) {
  return {.d_model = 8, .n_experts = 36, .heads = 2, .top_k = 3, .key_dim = 6, .batch_norm = bn,
          .sigmoid_scores = sigmoid, .relu = relu};
}

struct PeerFixture {
  PEERLayer layer;
  int64_t n;
  Tensor x, r, y;
  PeerFixture(const PEERConfig& c, int64_t n_tok, uint64_t seed) : layer("peer", c), n(n_tok) {
    Rng rng(seed);
    ParamList ps;
    layer.params(ps);
    for (Param* p : ps)
      if (p->trainable) test::fill_normal(p->w, rng, 0.5f);
    x = Tensor({n, c.d_model});
    r = Tensor({n, c.d_model});
    y = Tensor({n, c.d_model});
    test::fill_normal(x, rng);
    test::fill_normal(r, rng);
  }
  double loss() {
    layer.forward(y.data(), x.data(), n);
    double s = 0;
    for (int64_t i = 0; i < y.numel(); ++i) s += double(y[i]) * r[i];
    return s;
  }
};

// The analytic gradient of entry j of p, reading row-sparse gradients through their row list.
float grad_at(const Param& p, int64_t j) {
  if (!p.row_sparse) return p.g[j];
  const int64_t c = p.cols(), row = j / c;
  auto it = std::lower_bound(p.rows.begin(), p.rows.end(), row);
  if (it == p.rows.end() || *it != row) return 0.0f;
  return p.g[(it - p.rows.begin()) * c + j % c];
}

void check_grads(const PEERConfig& c, bool training, uint64_t seed) {
  PeerFixture fx(c, 7, seed);
  fx.layer.router.set_training(training);
  ParamList ps;
  fx.layer.params(ps);
  for (Param* p : ps) p->zero_grad();
  fx.loss();
  const std::vector<int32_t> sel = fx.layer.plan().expert;
  Tensor dx({fx.n, c.d_model});
  fx.layer.backward(dx.data(), fx.r.data());
  const float eps = 1e-2f;
  int checked = 0, skipped = 0;
  auto check = [&](float* v, float analytic, const std::string& what) {
    // the loss is not differentiable where retrieval changes
    const auto [num, smooth] = test::finite_diff_where_smooth(
        v, [&] { return fx.loss(); }, [&] { return fx.layer.plan().expert == sel; }, eps);
    if (!smooth) return void(++skipped);
    ++checked;
    EXPECT_TRUE(test::close(analytic, num, 2e-2, 2e-3)) << what << ": analytic " << analytic << " numeric " << num;
  };
  for (int64_t j = 0; j < fx.x.numel(); ++j) check(&fx.x[j], dx[j], "dx[" + std::to_string(j) + "]");
  Rng rng(seed + 1);
  for (Param* p : ps) {
    if (!p->trainable) continue;
    for (int i = 0; i < 24; ++i) {
      const int64_t j = int64_t(rng.below(uint64_t(p->w.numel())));
      check(&p->w[j], grad_at(*p, j), p->name + "[" + std::to_string(j) + "]");
    }
  }
  EXPECT_GT(checked, 3 * skipped + 60);
}

TEST(PEER, GradientsGeluSoftmax) { check_grads(small(), true, 1); }
TEST(PEER, GradientsReluSigmoid) { check_grads(small(false, true, true), true, 2); }
TEST(PEER, GradientsBatchNormTraining) { check_grads(small(true), true, 3); }
TEST(PEER, GradientsBatchNormEval) { check_grads(small(true), false, 4); }

TEST(PEER, RetrievalEqualsBruteForceOverAllFullKeys) {
  // N = 64^2 experts, 4 heads, k = 8: the router's ids are the top-k of q . [K1_i ; K2_j] over all
  // N concatenated keys, scored here in double.
  const PEERConfig c{.d_model = 16, .n_experts = 4096, .heads = 4, .top_k = 8, .key_dim = 12};
  PeerFixture fx(c, 200, 9);
  fx.loss();
  const RoutingPlan& plan = fx.layer.plan();
  const int64_t ns = c.n_sub(), H = int64_t(c.heads) * c.key_dim, half = c.key_dim / 2;
  const Tensor& W = fx.layer.router.query.w;
  const Tensor& K = fx.layer.router.sub_keys.w;
  int64_t far = 0;
  for (int64_t t = 0; t < fx.n; ++t) {
    std::vector<double> q(H, 0.0);
    for (int64_t o = 0; o < H; ++o)
      for (int i = 0; i < c.d_model; ++i) q[o] += double(W[o * c.d_model + i]) * fx.x[t * c.d_model + i];
    for (int head = 0; head < c.heads; ++head) {
      std::vector<std::pair<double, int64_t>> all;  // (-score, id): sorting gives score desc, id asc
      for (int64_t i = 0; i < ns; ++i)
        for (int64_t j = 0; j < ns; ++j) {
          double s = 0;
          for (int64_t e = 0; e < half; ++e) {
            s += q[head * c.key_dim + e] * K[((0 * c.heads + head) * ns + i) * half + e];
            s += q[head * c.key_dim + half + e] * K[((1 * c.heads + head) * ns + j) * half + e];
          }
          all.push_back({-s, i * ns + j});
        }
      std::partial_sort(all.begin(), all.begin() + c.top_k, all.end());
      for (int i = 0; i < c.top_k; ++i) {
        const int32_t id = plan.expert[t * c.slots() + head * c.top_k + i];
        EXPECT_EQ(id, all[i].second) << "token " << t << " head " << head << " rank " << i;
        far += id >= c.top_k * c.top_k;
      }
    }
  }
  EXPECT_GT(far, 1000);  // global ids, not positions among the k^2 candidates
}

TEST(PEER, TableGradientsTouchOnlyRetrievedRows) {
  const PEERConfig c{.d_model = 16, .n_experts = 1024, .heads = 4, .top_k = 4, .key_dim = 8};
  PeerFixture fx(c, 64, 5);
  fx.layer.bank.down.zero_grad();
  fx.layer.bank.up.zero_grad();
  fx.loss();
  Tensor dx({fx.n, c.d_model});
  fx.layer.backward(dx.data(), fx.r.data());
  std::set<int64_t> retrieved(fx.layer.plan().expert.begin(), fx.layer.plan().expert.end());
  const std::vector<int64_t> expect(retrieved.begin(), retrieved.end());
  EXPECT_EQ(fx.layer.bank.down.rows, expect);
  EXPECT_EQ(fx.layer.bank.up.rows, expect);
  EXPECT_LT(expect.size(), size_t(c.n_experts));
  EXPECT_EQ(fx.layer.bank.down.g.numel(), int64_t(expect.size()) * c.d_model);
}

TEST(PEER, TableGradientsAreDeterministicAcrossThreadCounts) {
  const PEERConfig c{.d_model = 32, .n_experts = 256, .heads = 8, .top_k = 8, .key_dim = 16};
  std::vector<std::vector<float>> grads;
  const int before = num_threads();
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    PeerFixture fx(c, 300, 6);  // many tokens share each expert: sums of many terms per row
    fx.loss();
    Tensor dx({fx.n, c.d_model});
    fx.layer.backward(dx.data(), fx.r.data());
    std::vector<float> g(fx.layer.bank.down.g.data(), fx.layer.bank.down.g.data() + fx.layer.bank.down.g.numel());
    g.insert(g.end(), fx.layer.bank.up.g.data(), fx.layer.bank.up.g.data() + fx.layer.bank.up.g.numel());
    g.insert(g.end(), fx.layer.router.sub_keys.g.data(), fx.layer.router.sub_keys.g.data() + fx.layer.router.sub_keys.g.numel());
    grads.push_back(g);
  }
  set_num_threads(before);
  EXPECT_EQ(grads[0], grads[1]);  // bitwise
  EXPECT_EQ(grads[0], grads[2]);
}

TEST(PEER, TableGradientsAccumulateOverBackwardPasses) {
  const PEERConfig c{.d_model = 8, .n_experts = 100, .heads = 2, .top_k = 3, .key_dim = 4};
  PeerFixture a(c, 5, 7), b(c, 5, 7);
  Tensor dx({5, 8});
  a.loss();
  a.layer.backward(dx.data(), a.r.data());
  const std::vector<int64_t> rows1 = a.layer.bank.up.rows;
  const Tensor g1 = a.layer.bank.up.g;
  // Second pass on other tokens: rows merge, shared rows add.
  Rng rng(99);
  test::fill_normal(a.x, rng);
  a.loss();
  a.layer.backward(dx.data(), a.r.data());
  b.x = a.x;
  b.loss();
  b.layer.backward(dx.data(), b.r.data());
  std::map<int64_t, std::vector<float>> want;
  auto add = [&](const std::vector<int64_t>& rows, const Tensor& g) {
    for (size_t i = 0; i < rows.size(); ++i) {
      auto& w = want[rows[i]];
      w.resize(8, 0.0f);
      for (int e = 0; e < 8; ++e) w[e] += g[int64_t(i) * 8 + e];
    }
  };
  add(rows1, g1);
  add(b.layer.bank.up.rows, b.layer.bank.up.g);
  ASSERT_EQ(a.layer.bank.up.rows.size(), want.size());
  size_t i = 0;
  for (const auto& [row, w] : want) {
    EXPECT_EQ(a.layer.bank.up.rows[i], row);
    for (int e = 0; e < 8; ++e) EXPECT_FLOAT_EQ(a.layer.bank.up.g[int64_t(i) * 8 + e], w[e]);
    ++i;
  }
}

TEST(PEER, UsageStatistics) {
  const PEERConfig c{.d_model = 8, .n_experts = 16, .heads = 3, .top_k = 2, .key_dim = 4};
  PeerFixture fx(c, 40, 8);
  PEERUsage u;
  fx.layer.set_usage(&u);
  fx.loss();
  const auto& ex = fx.layer.plan().expert;
  std::vector<int64_t> count(16, 0);
  int64_t dup = 0, overlap = 0;
  for (int64_t t = 0; t < 40; ++t) {
    std::vector<std::set<int32_t>> heads(3);
    std::set<int32_t> all;
    for (int s = 0; s < 6; ++s) {
      ++count[ex[t * 6 + s]];
      heads[s / 2].insert(ex[t * 6 + s]);
      dup += !all.insert(ex[t * 6 + s]).second;
    }
    for (int a = 0; a < 3; ++a)
      for (int b = a + 1; b < 3; ++b) {
        bool hit = false;
        for (int32_t e : heads[a]) hit = hit || heads[b].count(e);
        overlap += hit;
      }
  }
  EXPECT_EQ(u.count, count);
  EXPECT_EQ(u.tokens, 40);
  EXPECT_EQ(u.duplicate_slots, dup);
  EXPECT_EQ(u.overlapping_pairs, overlap);
  EXPECT_EQ(u.head_pairs, 40 * 3);
  double kl = 0, used = 0;
  for (int64_t cnt : count)
    if (cnt > 0) kl += cnt / 240.0 * std::log(cnt / 240.0 * 16), ++used;
  EXPECT_NEAR(u.kl_from_uniform(), kl, 1e-12);
  EXPECT_DOUBLE_EQ(u.fraction_used(), used / 16);
}

TEST(PEER, RejectsBadShapes) {
  EXPECT_NE(test::error_of([] { PEERLayer("p", {.d_model = 8, .n_experts = 30, .heads = 1, .top_k = 2, .key_dim = 4}); })
                .find("perfect square"), std::string::npos);
  EXPECT_NE(test::error_of([] { PEERLayer("p", {.d_model = 8, .n_experts = 16, .heads = 1, .top_k = 5, .key_dim = 4}); })
                .find("peer_top_k"), std::string::npos);
  EXPECT_NE(test::error_of([] { PEERLayer("p", {.d_model = 8, .n_experts = 16, .heads = 1, .top_k = 2, .key_dim = 3}); })
                .find("peer_key_dim"), std::string::npos);
}

}  // namespace
}  // namespace moe
