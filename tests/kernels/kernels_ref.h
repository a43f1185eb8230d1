#pragma once
// Naive double-precision references for the kernel tests.
#include <cmath>
#include <vector>

namespace moe::test {

inline std::vector<double> softmax_ref(const float* x, int64_t n) {
  double mx = -1e300;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, double(x[i]));
  std::vector<double> p(n);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += p[i] = std::exp(double(x[i]) - mx);
  for (auto& v : p) v /= s;
  return p;
}

}  // namespace moe::test
