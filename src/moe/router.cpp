#include "moe/router.h"

#include <algorithm>
#include <cmath>

#include "kernels/gemm.h"

namespace moe {

void Router::prepare_plan(RoutingPlan& plan, int64_t n, int k, int E) {
  plan.n_tok = n;
  plan.k = k;
  plan.n_expert = E;
  plan.expert.resize(n * k);
  plan.weight.resize(n * k);
}

void Router::gate_backward(float* dx, Param& gate, const float* dl, const float* x, int64_t n) {
  const int64_t E = gate.w.dim(0), d = gate.w.dim(1);
  kernels::linear_backward_input(dx, dl, gate.w.data(), n, d, E, /*accumulate=*/true);
  kernels::linear_backward_weight(gate.g.data(), dl, x, n, d, E);
}

void Router::update_balance_bias(Param& bias, std::vector<int64_t>& load, float speed) {
  if (load.empty()) return;
  double mean = 0;
  for (auto l : load) mean += double(l);
  mean /= double(load.size());
  for (size_t e = 0; e < load.size(); ++e) {
    const double diff = mean - double(load[e]);
    bias.w[int64_t(e)] += speed * float((diff > 0) - (diff < 0));
  }
  load.clear();
}

void Router::weigh_chosen_scores(RoutingPlan& plan, const float* scores, int64_t n, int k, int E,
                                 const std::function<float(float)>& scale, std::vector<double>& sums) {
  RouterStats& st = plan.stats;
  st.tokens_per_expert.assign(E, 0);
  for (int64_t t = 0; t < n; ++t) {
    const float* s = scores + t * E;
    float sum = 0, all = 0;
    for (int j = 0; j < k; ++j) sum += s[plan.expert[t * k + j]];
    for (int e = 0; e < E; ++e) all += s[e];
    const float f = scale(sum);
    for (int j = 0; j < k; ++j) {
      const int32_t e = plan.expert[t * k + j];
      plan.weight[t * k + j] = s[e] * f;
      st.tokens_per_expert[e]++;
    }
    for (int e = 0; e < E; ++e) {
      const double p = s[e] / all;
      sums[e] += p;
      if (p > 0) sums[E] -= p * std::log(p);
    }
  }
}

int64_t Router::reduce_over_group(RouterStats& st, std::vector<double>& sums, int k) const {
  const size_t E = st.tokens_per_expert.size();
  if (group_.size() > 1) {
    std::vector<double> rec(st.tokens_per_expert.begin(), st.tokens_per_expert.end());
    rec.insert(rec.end(), sums.begin(), sums.end());
    group_.all_reduce_sum(rec);
    for (size_t e = 0; e < E; ++e) st.tokens_per_expert[e] = int64_t(rec[e]);
    std::copy(rec.begin() + int64_t(E), rec.end(), sums.begin());
  }
  int64_t N = 0;
  for (auto c : st.tokens_per_expert) N += c;
  return N / k;
}

}  // namespace moe
