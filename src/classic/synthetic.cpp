#include "classic/synthetic.h"

#include <algorithm>
#include <functional>

#include "core/error.h"
#include "core/rng.h"

namespace moe::classic {

namespace {
RegionProblem sample(int64_t n, double noise, uint64_t seed, const std::function<std::pair<double, int>(double, double)>& f) {
  Rng rng(seed);
  RegionProblem p{Mat(n, 2), Mat(n, 1), std::vector<int>(static_cast<size_t>(n))};
  for (int64_t i = 0; i < n; ++i) {
    const double a = 2 * rng.uniform() - 1, b = 2 * rng.uniform() - 1;
    const auto [y, r] = f(a, b);
    p.X(i, 0) = a, p.X(i, 1) = b;
    p.Y(i, 0) = y + noise * rng.normal();
    p.region[size_t(i)] = r;
  }
  return p;
}
}  // namespace

RegionProblem quadrant_problem(int64_t n, double noise, uint64_t seed) {
  return sample(n, noise, seed, [](double a, double b) {
    return std::pair{(a >= 0 ? 2.0 : -1.0) * a + (b >= 0 ? 1.5 : -2.0) * b + 0.5, (a >= 0 ? 0 : 1) + (b >= 0 ? 0 : 2)};
  });
}

RegionProblem nested_problem(int64_t n, double noise, uint64_t seed) {
  return sample(n, noise, seed, [](double a, double b) {
    if (a < 0) return std::pair{1.0 * a + 0.5 * b + 2.0 * std::max(b - 0.4, 0.0) + 0.5, b < 0.4 ? 0 : 1};
    return std::pair{-1.5 * a + 0.5 * b - 2.0 * std::min(b + 0.3, 0.0) + 0.5, b < -0.3 ? 2 : 3};
  });
}

double region_accuracy(const Mat& gate, const std::vector<int>& region) {
  MOE_ASSERT(gate.rows() == int64_t(region.size()) && gate.rows() > 0);
  const int R = *std::max_element(region.begin(), region.end()) + 1;
  const int64_t E = gate.cols();
  if (R > 6 || R > E) throw Error("[classic] region_accuracy: " + std::to_string(R) + " regions for " + std::to_string(E) + " experts");
  std::vector<std::vector<int64_t>> counts(size_t(R), std::vector<int64_t>(size_t(E), 0));
  for (int64_t i = 0; i < gate.rows(); ++i) {
    Eigen::Index k;
    gate.row(i).maxCoeff(&k);
    ++counts[size_t(region[size_t(i)])][size_t(k)];
  }
  // Best injective map region -> expert, by depth-first search over every choice.
  std::vector<bool> used(size_t(E), false);
  std::function<int64_t(int)> best = [&](int r) -> int64_t {
    if (r == R) return 0;
    int64_t out = 0;
    for (int64_t e = 0; e < E; ++e)
      if (!used[size_t(e)]) {
        used[size_t(e)] = true;
        out = std::max(out, counts[size_t(r)][size_t(e)] + best(r + 1));
        used[size_t(e)] = false;
      }
    return out;
  };
  return double(best(0)) / double(gate.rows());
}

}  // namespace moe::classic
